package jetkit

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsServerBinary finds the nats-server that scripts/setup.sh installs, else one on PATH. The
// live tests skip, saying so, only when there is none at all.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	var candidates []string
	if tools := os.Getenv("JETKIT_TOOLS"); tools != "" {
		candidates = append(candidates, filepath.Join(tools, "bin", "nats-server"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".cache", "jetkit", "tools", "bin", "nats-server"))
	}
	for _, c := range candidates {
		if info, err := os.Stat(c); err == nil && !info.IsDir() {
			return c
		}
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	t.Skip("no nats-server in $JETKIT_TOOLS/bin, ~/.cache/jetkit/tools/bin or PATH: run scripts/setup.sh to install it")
	return ""
}

// startServer runs a JetStream-enabled nats-server on a free loopback port with its store in a
// temporary directory, and stops it when the test ends.
func startServer(t *testing.T) (url string) {
	t.Helper()
	return runServer(t, "jetkit-go-test", "")
}

// startCluster runs a 3-node JetStream cluster on loopback and returns one client URL per node.
func startCluster(t *testing.T) []string {
	t.Helper()
	ports := make([]int, 3)
	routes := ""
	for i := range ports {
		// Reserved by listening, released just before the servers start: another process may
		// take it in between, which fails the test at start-up rather than in its assertions.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		routes += fmt.Sprintf("%q, ", fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	urls := make([]string, len(ports))
	for i, port := range ports {
		urls[i] = runServer(t, fmt.Sprintf("jetkit-go-test-%d", i+1),
			fmt.Sprintf("cluster { name: jetkit-go-test, listen: \"127.0.0.1:%d\", routes: [%s] }", port, routes))
	}
	return urls
}

// runServer starts one nats-server named name; extra is appended to its config.
func runServer(t *testing.T, name, extra string) (url string) {
	t.Helper()
	bin := natsServerBinary(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "server.conf")
	config := fmt.Sprintf("listen: \"127.0.0.1:-1\"\nserver_name: %s\nports_file_dir: %q\njetstream { store_dir: %q }\n%s\n",
		name, dir, filepath.Join(dir, "js"), extra)
	if err := os.WriteFile(conf, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	log, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		_ = log.Close()
	})
	ports := filepath.Join(dir, fmt.Sprintf("%s_%d.ports", filepath.Base(bin), cmd.Process.Pid))
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			out, _ := os.ReadFile(log.Name())
			t.Fatalf("nats-server exited (%v):\n%s", waitErr, out)
		default:
		}
		// The server may still be writing the file: an unreadable one is read again.
		var p struct {
			Nats []string `json:"nats"`
		}
		if b, err := os.ReadFile(ports); err == nil && json.Unmarshal(b, &p) == nil && len(p.Nats) > 0 {
			return p.Nats[0]
		}
	}
	t.Fatalf("nats-server wrote no ports file %s", ports)
	return ""
}

// connect opens a connection that is closed before the server stops.
func connect(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name("jetkit-go-test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}
