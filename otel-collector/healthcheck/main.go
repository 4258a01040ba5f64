// Command healthcheck is the collector image's Docker health probe: the image is distroless (no
// shell, no curl), so this static binary GETs the health_check extension's URL and exits 0 on a
// 2xx answer, 1 otherwise.
package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: healthcheck URL")
		os.Exit(2)
	}
	client := http.Client{Timeout: 3 * time.Second}
	response, err := client.Get(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer response.Body.Close()
	if response.StatusCode < 200 || response.StatusCode > 299 {
		fmt.Fprintf(os.Stderr, "%s answered %s\n", os.Args[1], response.Status)
		os.Exit(1)
	}
}
