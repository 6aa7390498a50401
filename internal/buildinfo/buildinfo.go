// Package buildinfo reports the version the binaries were built from, so
// that `quics version` and `qic version` agree without ldflags plumbing.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set with -ldflags "-X .../buildinfo.Version=v1.2.3" by release
// builds; otherwise the module version or VCS revision is used.
var Version = ""

// String returns a one-line description: version, VCS revision, Go version.
func String() string {
	v := Version
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = s.Value[:12]
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if rev != "" {
		return fmt.Sprintf("%s (%s, %s)", v, rev, runtime.Version())
	}
	return fmt.Sprintf("%s (%s)", v, runtime.Version())
}
