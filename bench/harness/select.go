package harness

import (
	"fmt"
	"slices"
	"strings"
)

// Scenario keys name the scenarios for Options.Scenarios (quics-bench
// --scenarios), short and stable where the table's names say sizes.
const (
	KeyCeiling      = "ceiling"
	KeyInitialMixed = "initial-mixed"
	KeyInitialSmall = "initial-small"
	KeyPullSmall    = "pull-small"
	KeyUnchanged    = "unchanged"
	KeyInsert       = "insert"
	KeyAppend       = "append"
	KeyOverwrite    = "overwrite"
	KeyRename       = "rename"
	KeyCopy         = "copy"
	KeySmallEdit    = "small-edit"
	KeyStore        = "store"
	KeyRestore      = "restore"
	KeyGC           = "gc"
	KeyPropagation  = "propagation"
)

// ScenarioKeys lists every key, in the order the scenarios run.
var ScenarioKeys = []string{
	KeyCeiling, KeyInitialMixed, KeyInitialSmall, KeyPullSmall, KeyUnchanged, KeyInsert, KeyAppend, KeyOverwrite,
	KeyRename, KeyCopy, KeySmallEdit, KeyStore, KeyRestore, KeyGC, KeyPropagation,
}

// EditKeys are the edit scenarios of the mixed tree, the ones whose wire
// bytes the delta work targets: --scenarios edits.
var EditKeys = []string{KeyInsert, KeyAppend, KeyOverwrite, KeyRename, KeyCopy}

// ParseScenarios reads a comma-separated list of scenario keys ("edits"
// stands for EditKeys). An empty list selects everything.
func ParseScenarios(list string) ([]string, error) {
	var keys []string
	for _, k := range strings.Split(list, ",") {
		k = strings.TrimSpace(k)
		switch {
		case k == "":
		case k == "edits":
			keys = append(keys, EditKeys...)
		case slices.Contains(ScenarioKeys, k):
			keys = append(keys, k)
		default:
			return nil, fmt.Errorf("unknown scenario %q; known: %s, edits", k, strings.Join(ScenarioKeys, ", "))
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// selection says which scenarios a run measures. The initial sync of a
// tree runs whenever a selected scenario works on that tree, since the
// edits start from its state; only its extras (the run without the relay)
// follow the selection.
type selection struct {
	keys []string // empty: all
}

func (s selection) has(key string) bool {
	return len(s.keys) == 0 || slices.Contains(s.keys, key)
}

func (s selection) any(keys ...string) bool {
	return slices.ContainsFunc(keys, s.has)
}

// mixed reports whether anything selected needs the mixed tree and its
// server; propagation uses that server too.
func (s selection) mixed() bool {
	return s.any(KeyInitialMixed, KeyUnchanged, KeyInsert, KeyAppend, KeyOverwrite, KeyRename, KeyCopy,
		KeyStore, KeyRestore, KeyGC, KeyPropagation)
}

func (s selection) small() bool { return s.any(KeyInitialSmall, KeyPullSmall, KeySmallEdit) }

// keyOf maps the table's scenario names to their keys.
func (n names) keyOf() map[string]string {
	return map[string]string{
		n.ceilingMixed: KeyCeiling, n.ceilingSmall: KeyCeiling,
		n.initialMixed: KeyInitialMixed, n.initialSmall: KeyInitialSmall, n.pullSmall: KeyPullSmall,
		n.unchanged: KeyUnchanged, n.idle: KeyPropagation,
		n.insert: KeyInsert, n.appendMiB: KeyAppend, n.overwrite: KeyOverwrite,
		n.rename: KeyRename, n.copy: KeyCopy, n.smallEdit: KeySmallEdit,
		n.store: KeyStore, n.restore: KeyRestore, n.gc: KeyGC, n.propagation: KeyPropagation,
	}
}
