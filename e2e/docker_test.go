package e2e

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// No Docker engine runs where the tests do, so the image is checked as
// text: the Dockerfile keeps the contract the README documents, and the
// README's commands use the ports and the volume the Dockerfile declares.

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string
}

// stage is the instructions from one FROM to the next.
type stage struct {
	from  string // the FROM arguments
	instr []instruction
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instr {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// parseDockerfile splits text into stages. It knows comments, blank lines
// and backslash continuations, which is all this Dockerfile uses.
func parseDockerfile(t *testing.T, text string) []stage {
	t.Helper()
	var stages []stage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stages = append(stages, stage{from: in.args})
			return
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %s before the first FROM", in.cmd)
		}
		stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, in)
	}
	for line := range strings.SplitSeq(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if body, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	return stages
}

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDockerfileContract(t *testing.T) {
	stages := parseDockerfile(t, readRepoFile(t, "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a run stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	// Build stage: Go 1.26, modules in their own layer, static binaries.
	if !strings.HasPrefix(build.from, "golang:1.26") || !strings.Contains(build.from, " AS ") {
		t.Errorf("build stage FROM %q, want a named golang:1.26 stage", build.from)
	}
	modDownload, copyAll, goBuild := -1, -1, -1
	for i, in := range build.instr {
		switch {
		case in.cmd == "COPY" && strings.Fields(in.args)[0] == ".":
			copyAll = i
		case in.cmd == "RUN" && strings.Contains(in.args, "go mod download"):
			modDownload = i
		case in.cmd == "RUN" && strings.Contains(in.args, "go build"):
			goBuild = i
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`, "./cmd/quics", "./cmd/qic"} {
				if !strings.Contains(in.args, want) {
					t.Errorf("go build %q lacks %s", in.args, want)
				}
			}
		}
	}
	if modDownload < 0 || modDownload >= copyAll || copyAll >= goBuild {
		t.Errorf("build stage order: go mod download at %d, COPY . at %d, go build at %d; want them in that order",
			modDownload, copyAll, goBuild)
	}

	// Run stage: distroless as nonroot, never root.
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static-debian12:nonroot") {
		t.Errorf("run stage FROM %q, want distroless static nonroot", final.from)
	}
	for _, in := range final.all("USER") {
		if u, _, _ := strings.Cut(in.args, ":"); u == "root" || u == "0" {
			t.Errorf("USER %s: the server must not run as root", in.args)
		}
	}
	if !hasArgs(final.all("ENV"), "QUICS_DATA=/data") {
		t.Error("no ENV QUICS_DATA=/data")
	}
	if !hasArgs(final.all("VOLUME"), "/data") && !hasArgs(final.all("VOLUME"), `["/data"]`) {
		t.Error("no VOLUME /data")
	}
	// The volume's mount point exists and belongs to nonroot, or the
	// server cannot write its data.
	chowned := slices.ContainsFunc(final.all("COPY"), func(in instruction) bool {
		f := strings.Fields(in.args)
		return slices.Contains(f, "--chown=65532:65532") && f[len(f)-1] == "/data"
	})
	if !chowned {
		t.Error("no COPY --chown=65532:65532 ... /data: the volume would not be writable by nonroot")
	}
	exposed := exposedPorts(final)
	if !slices.Equal(exposed, []string{"6122/udp"}) {
		t.Errorf("EXPOSE %v, want only 6122/udp (the admin ports stay on loopback)", exposed)
	}
	hc := final.all("HEALTHCHECK")
	if len(hc) != 1 || !strings.Contains(hc[0].args, `"/usr/local/bin/quics", "health"`) {
		t.Errorf("HEALTHCHECK %v, want one running quics health", hc)
	}
	if !hasArgs(final.all("ENTRYPOINT"), `["/usr/local/bin/quics"]`) || !hasArgs(final.all("CMD"), `["run"]`) {
		t.Error(`want ENTRYPOINT ["/usr/local/bin/quics"] and CMD ["run"]`)
	}
}

func hasArgs(ins []instruction, args string) bool {
	return slices.ContainsFunc(ins, func(in instruction) bool { return in.args == args })
}

func exposedPorts(s stage) []string {
	var ports []string
	for _, in := range s.all("EXPOSE") {
		ports = append(ports, strings.Fields(in.args)...)
	}
	return ports
}

// dockerCommands returns the lines of the README's Docker section that
// run docker.
func dockerCommands(t *testing.T) []string {
	t.Helper()
	readme := readRepoFile(t, "README.md")
	_, section, ok := strings.Cut(readme, "\n## Docker\n")
	if !ok {
		t.Fatal("README has no ## Docker section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var cmds []string
	for line := range strings.SplitSeq(section, "\n") {
		if strings.HasPrefix(line, "docker ") {
			cmds = append(cmds, line)
		}
	}
	return cmds
}

func TestReadmeDockerCommandsMatchDockerfile(t *testing.T) {
	stages := parseDockerfile(t, readRepoFile(t, "Dockerfile"))
	final := stages[len(stages)-1]
	exposed := exposedPorts(final)

	var image, container string
	var ran bool
	for _, line := range dockerCommands(t) {
		f := strings.Fields(line)
		switch f[1] {
		case "build":
			i := slices.Index(f, "-t")
			if i < 0 || i+1 >= len(f) || f[len(f)-1] != "." {
				t.Fatalf("%q: want docker build -t NAME .", line)
			}
			image = f[i+1]
		case "run":
			ran = true
			var ports, volumes []string
			for i := 2; i+1 < len(f); i++ {
				switch f[i] {
				case "-p":
					ports = append(ports, f[i+1])
				case "-v":
					volumes = append(volumes, f[i+1])
				case "--name":
					container = f[i+1]
				}
			}
			if f[len(f)-1] != image {
				t.Errorf("%q runs image %q, the build tags %q", line, f[len(f)-1], image)
			}
			// Each published port maps onto a port the image exposes,
			// and every exposed port is published.
			var published []string
			for _, p := range ports {
				hostPort, containerPort, ok := strings.Cut(p, ":")
				if !ok || hostPort == "" {
					t.Errorf("%q: -p %s, want HOST:CONTAINER/PROTO", line, p)
					continue
				}
				published = append(published, containerPort)
			}
			slices.Sort(published)
			if !slices.Equal(published, exposed) {
				t.Errorf("%q publishes %v, the image exposes %v", line, published, exposed)
			}
			if len(volumes) != 1 || !strings.HasSuffix(volumes[0], ":/data") {
				t.Errorf("%q mounts %v, want one volume on /data", line, volumes)
			}
		case "logs", "exec":
			if len(f) < 3 || f[2] != container {
				t.Errorf("%q: want the container docker run names, %q", line, container)
			}
		}
	}
	if image == "" || !ran || container == "" {
		t.Fatalf("README Docker section lacks docker build -t or docker run --name (image %q, container %q)", image, container)
	}
	if !slices.Contains(dockerCommands(t), "docker exec "+container+" quics show clients") {
		t.Error("README does not show an admin command run with docker exec")
	}
}
