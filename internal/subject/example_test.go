package subject_test

import (
	"fmt"
	"slices"

	"switchboard/internal/subject"
)

func ExampleSublist() {
	subs := subject.NewSublist[string]()
	subs.Insert("orders.*", "", "audit")
	subs.Insert("orders.>", "", "archive")
	subs.Insert("orders.eu", "billing", "billing-1")
	subs.Insert("orders.*", "billing", "billing-2")
	subs.Insert("stock.eu", "", "stock")

	r := subs.Match([]byte("orders.eu"))
	// The order of values is unspecified, and a Result is shared and must
	// not be modified: sort copies.
	fmt.Println("plain:", slices.Sorted(slices.Values(r.Plain)))
	for _, g := range r.Groups {
		fmt.Println("group:", slices.Sorted(slices.Values(g)))
	}
	fmt.Println(subs.Match([]byte("orders.eu.paid")).Plain)
	// Output:
	// plain: [archive audit]
	// group: [billing-1 billing-2]
	// [archive]
}

func ExampleValidSubscribe() {
	for _, s := range []string{"orders.*", "orders.>", "orders.>.eu", "orders..eu", "a*b"} {
		fmt.Println(s, subject.ValidSubscribe([]byte(s)), subject.ValidPublish([]byte(s)))
	}
	// Output:
	// orders.* true false
	// orders.> true false
	// orders.>.eu false false
	// orders..eu false false
	// a*b true true
}
