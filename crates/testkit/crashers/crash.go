// A Go crasher: a nil pointer write in store (run with GOTRACEBACK=crash, the runtime then
// dies of the signal and the kernel dumps a core instead of the runtime just exiting 2).
package main

import "os"

type record struct{ value int }

//go:noinline
func store(r *record, v int) { r.value = v }

//go:noinline
func parse(args []string) { store(nil, len(args)) }

func main() {
	parse(os.Args)
}
