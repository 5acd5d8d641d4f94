// Command group is a member of a jetkit partitioned consumer group (contracts/WIRE.md §6a): it
// joins the group that TypeScript members (createConsumer({ durable, group })) and other Go
// members share, handles the events of the partitions it owns in stream order (one at a time
// per key, keys in parallel), and on SIGINT/SIGTERM hands its partitions over and exits. Each
// handled event is appended as one JSON line to -effects (the service's effect).
//
//	go run ./examples/group -server nats://127.0.0.1:4222 -durable billing \
//	  -subject order.fulfillment.completed -partitions 16 -effects effects.jsonl
//	go run ./examples/group ... -members a,b -member a   # static membership
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetkit.dev/contracts/go/jetkit"
)

func main() {
	server := flag.String("server", nats.DefaultURL, "NATS server URL")
	stream := flag.String("stream", "ORDER", "stream the group reads")
	subject := flag.String("subject", "", "filter subjects, comma-separated (default: the whole stream)")
	durable := flag.String("durable", "go-group", "the group's name (the TypeScript members' durable)")
	partitions := flag.Int("partitions", 16, "partitions of the group")
	members := flag.String("members", "", "static membership: member names, comma-separated")
	member := flag.String("member", "", "this process's member name (static)")
	lease := flag.Duration("lease", 5*time.Second, "partition lease")
	instance := flag.String("instance", "", "instance id (default <host>-<pid>-<random>)")
	effects := flag.String("effects", "effects.jsonl", "file each handled event is appended to")
	work := flag.Duration("work", 0, "time each handler takes")
	fresh := flag.Bool("new", false, "a new group starts at the end of the stream")
	flag.Parse()

	nc, err := nats.Connect(*server, nats.Name("jetkit-go-group"), nats.MaxReconnects(-1))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	out, err := os.OpenFile(*effects, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	defer out.Close()
	var mu sync.Mutex

	o := jetkit.GroupOptions{
		Durable: *durable, Stream: *stream, Partitions: *partitions, Lease: *lease,
		Instance: *instance, Member: *member, DeliverNew: *fresh,
		Logger: slog.New(slog.NewJSONHandler(os.Stderr, nil)),
	}
	if *subject != "" {
		o.Subjects = strings.Split(*subject, ",")
	}
	if *members != "" {
		o.Members = strings.Split(*members, ",")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	g, err := jetkit.JoinGroup(ctx, js, o, func(ctx context.Context, d *jetkit.Delivery) error {
		if *work > 0 {
			time.Sleep(*work)
		}
		meta, _ := d.Msg.Metadata()
		line, _ := json.Marshal(map[string]any{
			"by": "go", "instance": *instance, "id": d.Headers.ID, "key": d.Headers.PartitionKey,
			"seq": meta.Sequence.Stream, "partition": jetkit.PartitionOf(d.Headers.PartitionKey, *partitions),
		})
		mu.Lock()
		defer mu.Unlock()
		// One write per line: appends from several processes never interleave.
		_, err := out.Write(append(line, '\n'))
		return err
	})
	cancel()
	if err != nil {
		log.Printf("could not join the group: %v", err)
		os.Exit(2)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = g.Stop(ctx)
	log.Printf("left the group")
}
