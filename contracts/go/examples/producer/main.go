// Command producer publishes OrderFulfillmentCompleted events from Go with the jetkit helper:
// the subject, stream and headers come from the contract, never typed here. It prints one JSON
// line per JetStream acknowledgement.
//
//	go run ./examples/producer -server nats://127.0.0.1:4222 -count 3
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "jetkit.dev/contracts/gen/go/shop/common/v1"
	orderv1 "jetkit.dev/contracts/gen/go/shop/order/v1"
	"jetkit.dev/contracts/go/jetkit"
)

func main() {
	server := flag.String("server", nats.DefaultURL, "NATS server URL")
	count := flag.Int("count", 1, "events to publish")
	msgID := flag.String("msg-id", "", "publish every event with this ce-id / Nats-Msg-Id (duplicate suppression demo)")
	traceparent := flag.String("traceparent", "", "W3C traceparent to continue; a new trace when empty")
	malformed := flag.Bool("malformed", false, "also publish one payload that is not protobuf (it must land in the DLQ)")
	flag.Parse()

	nc, err := nats.Connect(*server, nats.Name("jetkit-go-producer"))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	producer := jetkit.NewProducer(js, "go-fulfillment")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	trace := jetkit.NewTrace()
	if parent, ok := jetkit.ParseTraceparent(*traceparent); ok {
		trace = parent.Child()
	}
	for i := 1; i <= *count; i++ {
		event := &orderv1.OrderFulfillmentCompleted{
			OrderId:    fmt.Sprintf("0190a0b0-0000-7000-8000-%012d", i),
			CheckoutId: fmt.Sprintf("0190a0b0-0000-7000-9000-%012d", i),
			Shipments: []*orderv1.Shipment{{
				ShipmentId: fmt.Sprintf("shp-%d", i), Carrier: orderv1.Carrier_CARRIER_DHL,
				TrackingNumber: fmt.Sprintf("JD%09d", i), Skus: []string{"SKU-1", "SKU-2"},
			}},
			ShippingCost: &commonv1.Money{CurrencyCode: "EUR", Units: int64(4 + i), Nanos: 990000000},
			CompletedAt:  timestamppb.New(time.Date(2026, 11, 21, 9, 30, i, 0, time.UTC)),
		}
		pub, err := producer.Publish(ctx, event, jetkit.PublishOptions{ID: *msgID, Traceparent: trace.String()})
		if err != nil {
			log.Fatal(err)
		}
		report(pub, event)
	}
	if *malformed {
		ev, err := jetkit.EventOf(&orderv1.OrderFulfillmentCompleted{})
		if err != nil {
			log.Fatal(err)
		}
		// 0xff is no valid protobuf field tag: every consumer must dead-letter this as undecodable.
		pub, err := producer.PublishEncoded(ctx, ev, []byte{0xff, 0xff, 0xff}, "", jetkit.PublishOptions{})
		if err != nil {
			log.Fatal(err)
		}
		report(pub, nil)
	}
}

func report(pub jetkit.Published, event *orderv1.OrderFulfillmentCompleted) {
	line := map[string]any{
		"subject": pub.Subject, "stream": pub.Stream, "seq": pub.Seq,
		"duplicate": pub.Duplicate, "id": pub.ID, "msg_id": pub.MsgID,
	}
	if event != nil {
		payload, err := jetkit.Marshal(event)
		if err != nil {
			log.Fatal(err)
		}
		line["event"] = json.RawMessage(protojson.Format(event))
		line["payload_hex"] = hex.EncodeToString(payload)
	}
	if err := json.NewEncoder(os.Stdout).Encode(line); err != nil {
		log.Fatal(err)
	}
}
