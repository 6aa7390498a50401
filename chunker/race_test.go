//go:build race

package chunker

// raceEnabled lets tests shrink their data under the race detector, which
// slows the byte loops tenfold; they check the same things either way.
const raceEnabled = true
