// Command consumer reads contract events from a durable JetStream pull consumer with the jetkit
// helper: every message is checked against contracts/WIRE.md and its contract, handled, and
// acknowledged, or dead-lettered with the reason. It prints one JSON line per message.
//
//	go run ./examples/consumer -server nats://127.0.0.1:4222 -stream ORDER -durable go-audit -count 3
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"

	orderv1 "jetkit.dev/contracts/gen/go/shop/order/v1"
	"jetkit.dev/contracts/go/jetkit"
)

func main() {
	server := flag.String("server", nats.DefaultURL, "NATS server URL")
	stream := flag.String("stream", "ORDER", "stream to consume")
	durable := flag.String("durable", "go-consumer", "durable consumer name")
	filter := flag.String("subject", "", "filter subject (default: the whole stream)")
	count := flag.Int("count", 1, "stop after this many messages")
	timeout := flag.Duration("timeout", 30*time.Second, "give up after this long")
	flag.Parse()

	nc, err := nats.Connect(*server, nats.Name("jetkit-go-consumer"))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(ctx, *stream, jetstream.ConsumerConfig{
		Durable: *durable, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: *filter, MaxDeliver: 5,
	})
	if err != nil {
		log.Fatal(err)
	}
	out := json.NewEncoder(os.Stdout)
	for seen := 0; seen < *count; {
		batch, err := cons.Fetch(*count-seen, jetstream.FetchContext(ctx))
		if err != nil {
			log.Fatal(err)
		}
		for msg := range batch.Messages() {
			seen++
			d, err := jetkit.Decode(msg)
			if err != nil {
				class := jetkit.FailureClassOf(err)
				if dlqErr := jetkit.DeadLetter(ctx, js, msg, class, err); dlqErr != nil {
					log.Fatal(dlqErr)
				}
				_ = out.Encode(map[string]any{"subject": msg.Subject(), "dead_letter": true, "class": class, "reason": err.Error()})
				continue
			}
			line := handle(d)
			if err := msg.DoubleAck(ctx); err != nil {
				log.Fatal(err)
			}
			_ = out.Encode(line)
		}
		if err := batch.Error(); err != nil && ctx.Err() != nil {
			log.Fatalf("stopped after %d of %d messages: %v", seen, *count, err)
		}
	}
}

// handle is the service's work; here it reports what it received, including the trace it
// continued (d.Trace is this consumer's span, a child of the producer's traceparent).
func handle(d *jetkit.Delivery) map[string]any {
	if done, ok := d.Message.(*orderv1.OrderFulfillmentCompleted); ok {
		log.Printf("order %s fulfilled with %d shipment(s)", done.GetOrderId(), len(done.GetShipments()))
	}
	payload, _ := jetkit.Marshal(d.Message)
	parent, _ := jetkit.ParseTraceparent(d.Headers.Traceparent)
	return map[string]any{
		"subject": d.Event.Subject, "type": d.Event.Type, "stream": d.Event.Stream,
		"id": d.Headers.ID, "msg_id": d.Headers.MsgID, "correlation_id": d.Headers.CorrelationID,
		"trace_id": parent.TraceID, "traceparent": d.Headers.Traceparent, "child_traceparent": d.Trace.String(),
		"headers": jetkit.OrderedHeaders(d.Msg.Headers()), "event": json.RawMessage(protojson.Format(d.Message)),
		"payload_hex": hex.EncodeToString(payload),
	}
}
