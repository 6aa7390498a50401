package harness

import (
	"slices"
	"testing"
	"time"

	"github.com/quic-s/quics/bench/dataset"
	"github.com/quic-s/quics/bench/report"
)

func TestParseScenarios(t *testing.T) {
	got, err := ParseScenarios(" insert, copy ,insert,,edits ")
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values([]string{KeyAppend, KeyCopy, KeyInsert, KeyOverwrite, KeyRename}))
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got, err := ParseScenarios(""); err != nil || len(got) != 0 {
		t.Errorf("empty list: %v, %v", got, err)
	}
	if _, err := ParseScenarios("insert,nonsense"); err == nil {
		t.Error("an unknown scenario was accepted")
	}
}

func TestSelection(t *testing.T) {
	all := selection{}
	if !all.has(KeyGC) || !all.mixed() || !all.small() {
		t.Error("the empty selection does not select everything")
	}
	edits := selection{keys: EditKeys}
	if !edits.mixed() || edits.small() || edits.has(KeyCeiling) || !edits.has(KeyRename) {
		t.Errorf("edits: mixed %v small %v", edits.mixed(), edits.small())
	}
	if s := (selection{keys: []string{KeySmallEdit}}); s.mixed() || !s.small() {
		t.Error("small-edit needs the small tree only")
	}
	// Every scenario of the table has a key, and unselected rows say so.
	n := newNames(dataset.Mixed(0.01), dataset.Small(0.01), Options{Edits: 1, Idle: time.Second})
	rep := &report.Report{}
	layoutRows(rep, n, false, false)
	keys := n.keyOf()
	for _, row := range rep.Rows {
		if _, ok := keys[row.Scenario]; !ok {
			t.Errorf("scenario %q has no key", row.Scenario)
		}
	}
	rep.Add(n.insert, report.Quics, report.Sample{report.Wire: 1})
	markUnselected(rep, n, edits)
	if row := rep.Find(n.gc, report.Quics); row.Skipped == "" {
		t.Error("an unselected row is not marked")
	}
	if row := rep.Find(n.insert, report.Quics); row.Skipped != "" {
		t.Error("a measured row is marked unselected")
	}
}
