// deckhand-go-traced-plugin: a guest-agent plugin in Go, for the traces
// tests. It continues the host's trace with OpenTelemetry Go's own W3C
// propagator (what otelgrpc's server handler does with a call's metadata)
// and exports its span for Apply with OpenTelemetry Go's stdout exporter,
// one JSON object a line on standard output (the agent keeps it in the
// plugin's stdout log).
//
// Built from Debian's packages in GOPATH mode (build.sh): grpc-go 1.33 and
// OpenTelemetry Go 1.1, which has no OTLP exporter and no otelgrpc; the
// propagation and the span are the same code those use.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// rawCodec passes messages through as bytes: the plugin answers without
// generated code.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error)      { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error { *(v.(*[]byte)) = append([]byte(nil), data...); return nil }
func (rawCodec) String() string                             { return "proto" }

// metadataCarrier reads a call's metadata for the propagator (as
// otelgrpc's metadataSupplier does).
type metadataCarrier struct{ md metadata.MD }

func (c metadataCarrier) Get(key string) string {
	values := c.md.Get(key)
	if len(values) == 0 {
		return ""
	}
	return values[0]
}
func (c metadataCarrier) Set(key, value string) { c.md.Set(key, value) }
func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c.md))
	for key := range c.md {
		keys = append(keys, key)
	}
	return keys
}

// status is plugin_comm.Status{code: 0, results: [text]}, encoded by hand.
func status(text string) []byte {
	return append([]byte{0x12, byte(len(text))}, text...)
}

func main() {
	address := flag.String("address", "", "the unix socket to serve on")
	flag.String("protocol", "unix", "the transport (unix)")
	flag.String("errorlogfile", "", "where errors go")
	flag.Parse()
	if *address == "" {
		fmt.Fprintln(os.Stderr, "deckhand-go-traced-plugin: a Deckhand plugin; the host launches it with --address")
		os.Exit(1)
	}
	exporter, err := stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	provider := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	tracer := provider.Tracer("deckhand-go-traced-plugin")
	propagator := propagation.TraceContext{}

	os.Remove(*address)
	listener, err := net.Listen("unix", *address)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	stop := make(chan struct{}, 1)
	handler := func(_ interface{}, stream grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(stream)
		var request []byte
		if err := stream.RecvMsg(&request); err != nil {
			return err
		}
		answer := []byte{}
		switch {
		case strings.HasSuffix(method, "/GetStatus"):
			answer = status("go-traced")
		case strings.HasSuffix(method, "/Apply"):
			md, _ := metadata.FromIncomingContext(stream.Context())
			ctx := propagator.Extract(context.Background(), metadataCarrier{md})
			_, span := tracer.Start(ctx, "go-plugin.apply", trace.WithSpanKind(trace.SpanKindServer))
			span.End()
		case strings.HasSuffix(method, "/Stop"):
			stop <- struct{}{}
		}
		return stream.SendMsg(&answer)
	}
	server := grpc.NewServer(grpc.CustomCodec(rawCodec{}), grpc.UnknownServiceHandler(handler))
	go func() {
		<-stop
		provider.Shutdown(context.Background())
		server.GracefulStop()
	}()
	server.Serve(listener)
}
