// Command compose-check loads a Compose file exactly as Docker Compose does (compose-go: variable
// interpolation, the Compose Specification schema, normalization, consistency checks) and prints
// the resulting project as JSON, or the loader's error on stderr with exit code 1.
//
// Usage: compose-check [-env-file FILE]... [-profile NAME]... COMPOSE_FILE
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var envFiles, profiles list
	args := os.Args[1:]
	for len(args) > 1 {
		switch args[0] {
		case "-env-file":
			_ = envFiles.Set(args[1])
		case "-profile":
			_ = profiles.Set(args[1])
		default:
			fail(fmt.Errorf("unknown option %s", args[0]))
		}
		args = args[2:]
	}
	if len(args) != 1 {
		fail(fmt.Errorf("usage: compose-check [-env-file FILE]... [-profile NAME]... COMPOSE_FILE"))
	}
	file, err := filepath.Abs(args[0])
	if err != nil {
		fail(err)
	}
	options, err := cli.NewProjectOptions(
		[]string{file},
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithOsEnv,
		cli.WithEnvFiles(envFiles...),
		cli.WithDotEnv,
		cli.WithProfiles(profiles),
		cli.WithInterpolation(true),
		cli.WithResolvedPaths(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		fail(err)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
