// Package archtest holds the guardrail tests of the code base: every
// package is documented, and the layers import only what they may.
package archtest
