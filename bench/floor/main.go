// Command healthfloor is bench.health's floor: the least an HTTP answer costs on this machine.
//
// It answers every path on 127.0.0.1:PORT with a fixed 20-byte JSON status, like the health
// service's live answer, and does nothing else. The bench measures it with the same load
// generator, rate and duration right before each row of the health service, so a tail the
// machine imposes (scheduling, a hypervisor stealing CPU) shows in both rows and a tail the
// service adds shows only in its own.
//
//	healthfloor PORT
package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"
)

var body = []byte(`{"status":"healthy"}`)

func answer(w http.ResponseWriter, _ *http.Request) {
	header := w.Header()
	header.Set("Content-Type", "application/json")
	header.Set("Cache-Control", "no-store")
	header.Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: healthfloor PORT")
		os.Exit(2)
	}
	port, err := strconv.Atoi(os.Args[1])
	if err != nil || port < 1 || port > 65535 {
		fmt.Fprintf(os.Stderr, "healthfloor: not a port: %q\n", os.Args[1])
		os.Exit(2)
	}
	server := &http.Server{
		Addr:              "127.0.0.1:" + strconv.Itoa(port),
		Handler:           http.HandlerFunc(answer),
		ReadHeaderTimeout: 5 * time.Second,
	}
	if err := server.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "healthfloor:", err)
		os.Exit(1)
	}
}
