package harness

import (
	"fmt"
	"math"
	"strconv"

	"github.com/quic-s/quics/bench/dataset"
)

// Edit sizes of the scenarios; they do not scale.
const (
	insertBytes    = 100
	appendBytes    = 1 * dataset.MiB
	overwriteBytes = 4 * dataset.KiB
	overwriteAt    = 10 * dataset.MiB
	smallEditBytes = 64
	smallEditEvery = 100 // 1 % of the small files
	propagateBytes = 2000
)

// names are the scenario names of one scale: they say the actual sizes.
type names struct {
	ceilingMixed, initialMixed, ceilingSmall, initialSmall string
	pullSmall                                              string
	unchanged, idle                                        string
	insert, appendMiB, overwrite, rename, copy, smallEdit  string
	store, restore, gc, propagation                        string
}

func newNames(mixed, small []dataset.Entry, o Options) names {
	sizeOf := func(path string) int64 {
		for _, e := range mixed {
			if e.Path == path {
				return e.Size
			}
		}
		return 0
	}
	big := size(sizeOf(dataset.BigFile))
	total := size(dataset.TotalSize(mixed))
	return names{
		ceilingMixed: "ceiling: " + total + " over quic-go",
		initialMixed: "initial sync, mixed " + total,
		ceilingSmall: "ceiling: " + size(dataset.TotalSize(small)) + " over quic-go",
		initialSmall: fmt.Sprintf("initial sync, %d small files", len(small)),
		pullSmall:    fmt.Sprintf("first pull, %d small files, new device", len(small)),
		unchanged:    "nothing changed (mixed)",
		idle:         fmt.Sprintf("nothing changed, 2× qic run, %s idle", o.Idle),
		insert:       fmt.Sprintf("insert %d B mid %s file", insertBytes, big),
		appendMiB:    fmt.Sprintf("append %s to %s file", size(appendBytes), big),
		overwrite:    fmt.Sprintf("overwrite %s at %s", size(overwriteBytes), size(min(overwriteAt, sizeOf(dataset.BigFile)/2))),
		rename:       "rename " + size(sizeOf(dataset.RenameSource)) + " file",
		copy:         "copy " + size(sizeOf(dataset.CopySource)) + " file",
		smallEdit:    fmt.Sprintf("%d B in 1 %% of small files (%d)", smallEditBytes, (len(small)+smallEditEvery-1)/smallEditEvery),
		store:        "store after mixed + edits",
		restore:      "restore " + big + " file (--output)",
		gc:           "gc after set-retention --keep-last 1",
		propagation:  fmt.Sprintf("propagation A→B, qic run (%d edits)", o.Edits),
	}
}

// size prints a byte count briefly: 512 MiB, 12.8 MiB, 100 B.
func size(n int64) string {
	for _, u := range []struct {
		unit string
		div  int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.div {
			return strconv.FormatFloat(math.Round(float64(n)/float64(u.div)*10)/10, 'f', -1, 64) + " " + u.unit
		}
	}
	return fmt.Sprintf("%d B", n)
}
