//go:build !linux

package journal_test

import "errors"

func dropCache(string) error { return errors.New("cannot drop the page cache here") }
