// Package report holds the benchmark's results and prints them: one
// aligned table for people, JSON for machines, and a list of the issue's
// targets with whether each was met.
//
// # Rows and samples
//
// A [Row] is one tool in one scenario. Each run adds a [Sample], a map
// from [Metric] to a number in base units (seconds, bytes, counts);
// metrics a tool does not have are absent, not zero. [Report.Finish]
// takes the median of every metric over the runs, the ratios of quics to
// the other tools of its scenario, and checks the targets.
//
// # Ratios
//
// A row names the metric that matters in its scenario (its Key): wire
// bytes for an edit, wall time for an initial sync. The quics row of a
// scenario is divided by the rsync rows of the same scenario and by the
// ceiling row it names, on that metric.
package report
