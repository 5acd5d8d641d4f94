// Command sdkgo sends and receives CloudEvents with the CloudEvents Go SDK (sdk-go v2) and its
// NATS JetStream binding, for interop/test/sdk-go.test.ts: it proves what a third-party
// CloudEvents client reads from jetkit and what jetkit reads from it.
//
//	sdkgo send -url U -stream S -subject X -mode binary|structured -type T -id I -data HEX [-ext k=v ...]
//	sdkgo receive -url U -stream S -subject X -count N   (one JSON line per event)
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	cejsm "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/nats-io/nats.go"
)

type exts []string

func (e *exts) String() string     { return strings.Join(*e, ",") }
func (e *exts) Set(v string) error { *e = append(*e, v); return nil }

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: sdkgo send|receive ..."))
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	url := fs.String("url", nats.DefaultURL, "NATS server")
	stream := fs.String("stream", "", "JetStream stream")
	subject := fs.String("subject", "", "subject")
	mode := fs.String("mode", "binary", "binary or structured")
	typ := fs.String("type", "", "ce type")
	id := fs.String("id", "", "ce id")
	source := fs.String("source", "/sdk-go/interop", "ce source")
	data := fs.String("data", "", "protobuf payload, hex")
	count := fs.Int("count", 1, "events to receive")
	var ext exts
	fs.Var(&ext, "ext", "extension name=value (repeatable)")
	_ = fs.Parse(os.Args[2:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch os.Args[1] {
	case "send":
		fail(send(ctx, *url, *stream, *subject, *mode, *typ, *id, *source, *data, ext))
	case "receive":
		fail(receive(ctx, *url, *stream, *subject, *count))
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}

func send(ctx context.Context, url, stream, subject, mode, typ, id, source, data string, ext exts) error {
	p, err := cejsm.NewSender(url, stream, subject, nil, nil)
	if err != nil {
		return err
	}
	defer p.Close(ctx)
	c, err := cloudevents.NewClient(p)
	if err != nil {
		return err
	}
	payload, err := hex.DecodeString(data)
	if err != nil {
		return err
	}
	e := cloudevents.NewEvent()
	e.SetID(id)
	e.SetType(typ)
	e.SetSource(source)
	e.SetTime(time.Date(2026, 11, 22, 14, 5, 30, 500_000_000, time.UTC))
	if err := e.SetData("application/protobuf", payload); err != nil {
		return err
	}
	for _, kv := range ext {
		k, v, _ := strings.Cut(kv, "=")
		e.SetExtension(k, v)
	}
	if mode == "structured" {
		ctx = binding.WithForceStructured(ctx)
	}
	if r := c.Send(ctx, e); cloudevents.IsUndelivered(r) {
		return r
	}
	return nil
}

func receive(ctx context.Context, url, stream, subject string, count int) error {
	p, err := cejsm.NewConsumer(url, stream, subject, nil, nil, []nats.SubOpt{nats.DeliverAll(), nats.BindStream(stream)})
	if err != nil {
		return err
	}
	defer p.Close(ctx)
	c, err := cloudevents.NewClient(p)
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	seen := 0
	out := json.NewEncoder(os.Stdout)
	err = c.StartReceiver(ctx, func(e cloudevents.Event) {
		_ = out.Encode(map[string]any{
			"id": e.ID(), "specversion": e.SpecVersion(), "type": e.Type(), "source": e.Source(),
			"time": e.Time().UTC().Format(time.RFC3339Nano), "datacontenttype": e.DataContentType(),
			"extensions": e.Extensions(), "data_hex": hex.EncodeToString(e.Data()),
		})
		if seen++; seen == count {
			stop()
		}
	})
	if seen < count {
		return fmt.Errorf("received %d of %d events: %v", seen, count, err)
	}
	return nil
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdkgo:", err)
		os.Exit(1)
	}
}
