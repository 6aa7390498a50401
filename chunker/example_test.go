package chunker_test

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"math/rand/v2"

	"github.com/quic-s/quics/chunker"
)

// The cut points below are a golden record: the same bytes must be cut in the
// same places on every machine and by every version of this package, or
// chunks stored earlier would no longer be found. If this output changes, the
// chunking changed, and that is a format break, not a test to update.
func Example() {
	// 1 MiB of reproducible pseudo-random data: ChaCha8's output is fixed
	// by its specification.
	data := make([]byte, 1<<20)
	_, _ = rand.NewChaCha8([32]byte{'q', 'u', 'i', 'c', 's'}).Read(data)

	c, err := chunker.New(bytes.NewReader(data), chunker.DefaultParams)
	if err != nil {
		log.Fatal(err)
	}
	for {
		ch, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("offset %7d length %6d\n", ch.Offset, ch.Length)
	}
	// Output:
	// offset       0 length  71261
	// offset   71261 length  69185
	// offset  140446 length  67565
	// offset  208011 length  69073
	// offset  277084 length  66997
	// offset  344081 length  75175
	// offset  419256 length  47959
	// offset  467215 length  67370
	// offset  534585 length  82380
	// offset  616965 length  27771
	// offset  644736 length  76166
	// offset  720902 length  79956
	// offset  800858 length 103464
	// offset  904322 length  68680
	// offset  973002 length  75574
}

// Boundaries cuts a slice that is already in memory.
func ExampleBoundaries() {
	data := make([]byte, 8<<10)
	_, _ = rand.NewChaCha8([32]byte{'q', 'u', 'i', 'c', 's'}).Read(data)

	ends, err := chunker.Boundaries(data, chunker.Params{Min: 256, Avg: 1024, Max: 4096})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ends)
	// Output:
	// [1153 1819 3005 4251 5902 6492 7633 8192]
}
