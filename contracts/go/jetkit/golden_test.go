package jetkit

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// golden is contracts/vectors/golden.json (contracts/WIRE.md §7).
type golden struct {
	Vectors []struct {
		Name        string          `json:"name"`
		Type        string          `json:"type"`
		Event       json.RawMessage `json:"event"`
		HeaderInput struct {
			ID            string `json:"id"`
			Source        string `json:"source"`
			Time          string `json:"time"`
			CorrelationID string `json:"correlation_id"`
			CausationID   string `json:"causation_id"`
			Traceparent   string `json:"traceparent"`
			Tracestate    string `json:"tracestate"`
		} `json:"header_input"`
		Subject    string      `json:"subject"`
		Stream     string      `json:"stream"`
		PayloadHex string      `json:"payload_hex"`
		Headers    [][2]string `json:"headers"`
	} `json:"vectors"`
	Structured []struct {
		Vector  string      `json:"vector"`
		Headers [][2]string `json:"headers"`
		Body    string      `json:"body"`
	} `json:"structured"`
	Received []struct {
		Name      string      `json:"name"`
		Headers   [][2]string `json:"headers"`
		PayloadOf string      `json:"payload_of"`
		Body      *string     `json:"body"`
		Error     string      `json:"error"`
		Expect    *struct {
			ID            string `json:"id"`
			Type          string `json:"type"`
			Source        string `json:"source"`
			Time          string `json:"time"`
			MsgID         string `json:"msg_id"`
			PartitionKey  string `json:"partition_key"`
			CorrelationID string `json:"correlation_id"`
			CausationID   string `json:"causation_id"`
			Traceparent   string `json:"traceparent"`
			Tracestate    string `json:"tracestate"`
			PayloadHex    string `json:"payload_hex"`
		} `json:"expect"`
	} `json:"received"`
	DeadLetter struct {
		Vector string `json:"vector"`
		Input  struct {
			Stream       string `json:"stream"`
			Sequence     uint64 `json:"sequence"`
			Subject      string `json:"subject"`
			Consumer     string `json:"consumer"`
			Deliveries   uint64 `json:"deliveries"`
			FailureClass string `json:"failure_class"`
			Reason       string `json:"reason"`
			FirstFailure string `json:"first_failure"`
			LastFailure  string `json:"last_failure"`
		} `json:"input"`
		ReplaySequence uint64      `json:"replay_sequence"`
		Headers        [][2]string `json:"headers"`
		ReplayHeaders  [][2]string `json:"replay_headers"`
	} `json:"dead_letter"`
}

func loadGolden(t *testing.T) golden {
	t.Helper()
	b, err := os.ReadFile("../../vectors/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Vectors) == 0 || len(g.DeadLetter.Headers) == 0 {
		t.Fatal("golden.json has no vectors")
	}
	return g
}

func pairs(hs []Header) [][2]string {
	out := make([][2]string, len(hs))
	for i, h := range hs {
		out[i] = [2]string{h.Name, h.Value}
	}
	return out
}

func headersOf(ps [][2]string) []Header {
	out := make([]Header, len(ps))
	for i, p := range ps {
		out[i] = Header{p[0], p[1]}
	}
	return out
}

func TestGoldenVectors(t *testing.T) {
	for _, v := range loadGolden(t).Vectors {
		t.Run(v.Name, func(t *testing.T) {
			ev, err := EventByType(v.Type)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Subject != v.Subject || ev.Stream != v.Stream {
				t.Fatalf("contract says %s in %s, vector says %s in %s", ev.Subject, ev.Stream, v.Subject, v.Stream)
			}
			mt, err := protoregistry.GlobalTypes.FindMessageByName(ev.Descriptor.FullName())
			if err != nil {
				t.Fatal(err)
			}
			m := mt.New().Interface()
			if err := protojson.Unmarshal(v.Event, m); err != nil {
				t.Fatal(err)
			}
			payload, err := Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(payload); got != v.PayloadHex {
				t.Fatalf("payload differs\n got  %s\n want %s", got, v.PayloadHex)
			}
			if err := Validate(m); err != nil {
				t.Fatalf("golden event breaks its contract: %v", err)
			}
			in := v.HeaderInput
			got := pairs(EventHeaders(HeaderInput{
				ID: in.ID, Type: v.Type, Source: in.Source, TimeText: in.Time, PartitionKey: partitionKeyOf(ev, m),
				CorrelationID: in.CorrelationID, CausationID: in.CausationID, Traceparent: in.Traceparent, Tracestate: in.Tracestate,
			}))
			if !slices.Equal(got, v.Headers) {
				t.Fatalf("headers differ\n got  %v\n want %v", got, v.Headers)
			}
			r, err := ReadEventHeaders(NatsHeader(headersOf(v.Headers)))
			if err != nil || r.ID != in.ID || r.Type != v.Type || r.MsgID != in.ID || r.Traceparent != in.Traceparent {
				t.Fatalf("ReadEventHeaders = %+v, %v", r, err)
			}
		})
	}
}

func TestGoldenVectorsCoverTheCatalog(t *testing.T) {
	covered := map[string]bool{}
	for _, v := range loadGolden(t).Vectors {
		covered[v.Type] = true
	}
	for _, e := range Events() {
		if !covered[e.Type] {
			t.Errorf("no golden vector for %s", e.Type)
		}
	}
}

func TestGoldenReceived(t *testing.T) {
	g := loadGolden(t)
	payloads := map[string]string{}
	for _, v := range g.Vectors {
		payloads[v.Name] = v.PayloadHex
	}
	for _, r := range g.Received {
		t.Run(r.Name, func(t *testing.T) {
			var body []byte
			if r.Body != nil {
				body = []byte(*r.Body)
			} else {
				body, _ = hex.DecodeString(payloads[r.PayloadOf])
			}
			got, data, err := ReadEvent(NatsHeader(headersOf(r.Headers)), body)
			if r.Error != "" {
				if !IsCode(err, r.Error) {
					t.Fatalf("want %s, got %+v, %v", r.Error, got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			x := r.Expect
			want := Received{ID: x.ID, Type: x.Type, Source: x.Source, Time: x.Time, MsgID: x.MsgID,
				PartitionKey: x.PartitionKey, CorrelationID: x.CorrelationID, CausationID: x.CausationID,
				Traceparent: x.Traceparent, Tracestate: x.Tracestate}
			if got != want || hex.EncodeToString(data) != x.PayloadHex {
				t.Fatalf("read\n %+v %x\nwant\n %+v %s", got, data, want, x.PayloadHex)
			}
		})
	}
}

func TestGoldenStructuredReadsAsBinary(t *testing.T) {
	g := loadGolden(t)
	for _, s := range g.Structured {
		for _, v := range g.Vectors {
			if v.Name != s.Vector {
				continue
			}
			payload, _ := hex.DecodeString(v.PayloadHex)
			bin, _, err := ReadEvent(NatsHeader(headersOf(v.Headers)), payload)
			if err != nil {
				t.Fatal(err)
			}
			st, data, err := ReadEvent(NatsHeader(headersOf(s.Headers)), []byte(s.Body))
			if err != nil || st != bin || hex.EncodeToString(data) != v.PayloadHex {
				t.Fatalf("%s: structured %+v %v\n binary %+v", s.Vector, st, err, bin)
			}
		}
	}
}

func TestGoldenDeadLetterAndReplay(t *testing.T) {
	g := loadGolden(t)
	dl := g.DeadLetter
	var original []Header
	for _, v := range g.Vectors {
		if v.Name == dl.Vector {
			original = headersOf(v.Headers)
		}
	}
	if original == nil {
		t.Fatalf("dead-letter vector names %q, which is not a vector", dl.Vector)
	}
	in := dl.Input
	got := pairs(DeadLetterHeaders(original, DeadLetterInput{
		Stream: in.Stream, Sequence: in.Sequence, Subject: in.Subject, Consumer: in.Consumer,
		Deliveries: in.Deliveries, FailureClass: FailureClass(in.FailureClass), Reason: in.Reason,
		FirstFailureText: in.FirstFailure, LastFailureText: in.LastFailure,
	}))
	if !slices.Equal(got, dl.Headers) {
		t.Fatalf("dead-letter headers differ\n got  %v\n want %v", got, dl.Headers)
	}
	replay := pairs(ReplayHeaders(headersOf(dl.Headers), dl.ReplaySequence, "DLQ"))
	if !slices.Equal(replay, dl.ReplayHeaders) {
		t.Fatalf("replay headers differ\n got  %v\n want %v", replay, dl.ReplayHeaders)
	}
	if got := DeadLetterSubject(in.Subject); got != "dlq."+in.Subject {
		t.Fatalf("DeadLetterSubject = %s", got)
	}
}
