// Command demoapp is the HTTP service resilience-tests uses as its target.
//
// Well behaved by default: /readyz fails as soon as SIGTERM arrives, requests keep
// being served for --drain (each answered with Connection: close), then the server shuts down gracefully and exits 0.
// --misbehave switches on one classic mistake at a time:
//
//	exit-on-term   exit(1) immediately on SIGTERM, dropping in-flight requests
//	ignore-term    ignore SIGTERM (the kubelet SIGKILLs it after the grace period)
//	ready-early    report ready before it can serve (serving starts after --start-delay)
//	slow-start     take --start-delay before listening at all
//	errors         answer a --error-ratio share of requests with HTTP 500
//
// --cpu-per-request (or ?cpu= on one request) burns CPU on every request and /metrics says how busy the app
// is (metrics.go): the target of the autoscaling demo, deploy/demo-hpa.yaml.
//
// With --data DIR it also keeps records on disk (records.go): the stateful demo of deploy/demo-stateful.yaml.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

type app struct {
	pod, zone   string
	misbehave   string
	errorRatio  float64
	terminating atomic.Bool
	serving     atomic.Bool
	inflight    atomic.Int64
	cpu         time.Duration // --cpu-per-request
	metrics     *metrics
}

func (a *app) root(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Pod", a.pod)
	w.Header().Set("X-Zone", a.zone)
	if a.terminating.Load() {
		// Keep-alive clients reconnect (to a pod that is not going away) instead of
		// racing the final close of an idle connection.
		w.Header().Set("Connection", "close")
	}
	if !a.serving.Load() {
		http.Error(w, "not ready to serve yet", http.StatusServiceUnavailable)
		return
	}
	cpu := a.cpu
	if v := r.URL.Query().Get("cpu"); v != "" { // this request's cost instead of --cpu-per-request
		d, err := parseBurn(v)
		if err != nil {
			http.Error(w, "bad ?cpu=: "+err.Error(), http.StatusBadRequest)
			return
		}
		cpu = d
	}
	if d := r.URL.Query().Get("sleep"); d != "" {
		if dur, err := time.ParseDuration(d); err == nil && dur <= 30*time.Second {
			time.Sleep(dur)
		}
	}
	if cpu > 0 {
		a.metrics.burnt(burn(cpu))
	}
	if a.misbehave == "errors" && rand.Float64() < a.errorRatio {
		http.Error(w, "injected error", http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "ok pod=%s zone=%s\n", a.pod, a.zone)
}

func (a *app) readyz(w http.ResponseWriter, _ *http.Request) {
	ready := a.serving.Load() || a.misbehave == "ready-early"
	if a.terminating.Load() || !ready {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

func (a *app) healthz(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "alive") }

func main() {
	if subcommand(os.Args[1:]) {
		return
	}
	port := flag.Int("port", 8080, "port to listen on")
	data := flag.String("data", "", "stateful mode: keep records in this folder (the /records endpoints)")
	drain := flag.Duration("drain", 5*time.Second, "how long to keep serving after SIGTERM")
	startDelay := flag.Duration("start-delay", 10*time.Second, "start-up time for slow-start and ready-early")
	misbehave := flag.String("misbehave", "", "exit-on-term, ignore-term, ready-early, slow-start or errors")
	errorRatio := flag.Float64("error-ratio", 0.1, "share of requests answered 500 with --misbehave errors")
	cpuPerRequest := flag.String("cpu-per-request", "0s",
		"CPU time each request to / burns before it is answered, 0 to 2s (?cpu= overrides it per request)")
	flag.Parse()
	cpu, err := parseBurn(*cpuPerRequest)
	if err != nil {
		log.Fatalf("--cpu-per-request: %v", err)
	}
	switch *misbehave {
	case "", "exit-on-term", "ignore-term", "ready-early", "slow-start", "errors":
	default:
		log.Fatalf("unknown --misbehave %q", *misbehave)
	}
	a := &app{pod: env("POD_NAME", hostname()), zone: env("NODE_ZONE", "unknown"), misbehave: *misbehave,
		errorRatio: *errorRatio, cpu: cpu}
	a.metrics = newMetrics(a.inflight.Load)

	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)

	if *misbehave == "slow-start" {
		log.Printf("slow start: waiting %s before listening", *startDelay)
		time.Sleep(*startDelay)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", a.counted(a.root))
	mux.HandleFunc("/metrics", a.metrics.serve)
	mux.HandleFunc("/readyz", a.readyz)
	mux.HandleFunc("/healthz", a.healthz)
	if *data != "" {
		s, err := openStore(*data)
		if err != nil {
			log.Fatalf("data: %v", err)
		}
		s.routes(mux, a)
		n, _ := s.checksum()
		log.Printf("stateful: %d records in %s", n, *data)
	}
	server := &http.Server{Addr: fmt.Sprintf(":%d", *port), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := server.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatalf("listen: %v", err)
		}
	}()
	if *misbehave == "ready-early" {
		go func() { time.Sleep(*startDelay); a.serving.Store(true) }()
	} else {
		a.serving.Store(true)
	}
	log.Printf("serving on :%d as pod=%s zone=%s misbehave=%q cpu-per-request=%s", *port, a.pod, a.zone, *misbehave,
		cpu)

	for sig := range signals {
		log.Printf("got %s", sig)
		switch *misbehave {
		case "ignore-term":
			if sig == syscall.SIGTERM {
				log.Printf("ignoring SIGTERM")
				continue
			}
		case "exit-on-term":
			log.Printf("exiting at once with %d requests in flight", a.inflight.Load())
			os.Exit(1)
		}
		a.terminating.Store(true)
		log.Printf("not ready any more; draining for %s", *drain)
		time.Sleep(*drain)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := server.Shutdown(ctx)
		cancel()
		if err != nil {
			log.Printf("shutdown: %v", err)
			os.Exit(1)
		}
		log.Printf("stopped cleanly")
		os.Exit(0)
	}
}

func env(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}
