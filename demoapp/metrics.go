package main

// What a request costs and how busy the app is, for autoscalers to read.
//
// Every request to the / handler can burn CPU (--cpu-per-request, or ?cpu=DURATION for one request) and is
// counted when it is answered. GET /metrics answers in the Prometheus text exposition format 0.0.4, written
// by hand (the module has no dependency):
//
//	demo_requests_total{code="200"}  counter: requests answered by the / handler, by status code
//	demo_requests_in_flight          gauge: requests of the / handler being served now
//	demo_requests_per_second         gauge: requests answered over the last 5 s, divided by 5
//	demo_cpu_seconds_total           counter: CPU time burnt on purpose (--cpu-per-request, ?cpu=)
//
// /metrics, /readyz, /healthz and the /records endpoints are not counted: probes and scrapes are not load.

import (
	"fmt"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxBurn bounds the CPU one request may ask for: a typo such as ?cpu=5m must not pin a core for minutes.
const maxBurn = 2 * time.Second

// rateWindow is the window of demo_requests_per_second, in whole seconds; the ring keeps one more bucket for
// the second in progress, which the gauge leaves out.
const rateWindow = 5

type metrics struct {
	mu       sync.Mutex
	codes    map[int]int64
	cpu      time.Duration
	buckets  [rateWindow + 1]int64 // requests answered in the second stamps[i] (unix seconds)
	stamps   [rateWindow + 1]int64
	inflight func() int64
	now      func() time.Time
}

func newMetrics(inflight func() int64) *metrics {
	return &metrics{codes: map[int]int64{}, inflight: inflight, now: time.Now}
}

// answered records one request of the / handler, answered with code.
func (m *metrics) answered(code int) {
	sec := m.now().Unix()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.codes[code]++
	i := sec % (rateWindow + 1)
	if m.stamps[i] != sec { // the bucket still holds a second that left the window: start it again
		m.stamps[i], m.buckets[i] = sec, 0
	}
	m.buckets[i]++
}

func (m *metrics) burnt(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cpu += d
}

// perSecond is the requests answered in the 5 whole seconds before the current one, divided by 5. The second in
// progress is left out: counted, it would be divided as if it were whole, and the gauge would read up to 20 %
// low under a steady load (an autoscaler on it would lag by as much). Buckets are read by their stamp, so an
// idle app decays to 0 with no request to clear them.
func (m *metrics) perSecond() float64 {
	sec := m.now().Unix()
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for i, stamp := range m.stamps {
		if age := sec - stamp; age >= 1 && age <= rateWindow {
			n += m.buckets[i]
		}
	}
	return float64(n) / rateWindow
}

func (m *metrics) serve(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	codes := make([]int, 0, len(m.codes))
	for code := range m.codes {
		codes = append(codes, code)
	}
	sort.Ints(codes)
	var b strings.Builder
	b.WriteString("# HELP demo_requests_total Requests answered by the / handler, by HTTP status code " +
		"(/metrics, /readyz, /healthz and /records are not counted).\n# TYPE demo_requests_total counter\n")
	for _, code := range codes {
		fmt.Fprintf(&b, "demo_requests_total{code=\"%d\"} %d\n", code, m.codes[code])
	}
	cpu := m.cpu
	m.mu.Unlock()
	fmt.Fprintf(&b, "# HELP demo_requests_in_flight Requests of the / handler being served now.\n"+
		"# TYPE demo_requests_in_flight gauge\ndemo_requests_in_flight %d\n", m.inflight())
	fmt.Fprintf(&b, "# HELP demo_requests_per_second Requests answered by the / handler over the last %d s, "+
		"divided by %d.\n# TYPE demo_requests_per_second gauge\ndemo_requests_per_second %s\n",
		rateWindow, rateWindow, strconv.FormatFloat(m.perSecond(), 'g', -1, 64))
	fmt.Fprintf(&b, "# HELP demo_cpu_seconds_total CPU time burnt on purpose by requests "+
		"(--cpu-per-request, ?cpu=).\n# TYPE demo_cpu_seconds_total counter\ndemo_cpu_seconds_total %s\n",
		strconv.FormatFloat(cpu.Seconds(), 'g', -1, 64))
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}

// statusWriter remembers the status code a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// counted wraps the / handler: in flight while it runs, counted by code once it has answered.
func (a *app) counted(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a.inflight.Add(1)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			a.inflight.Add(-1)
			if sw.code == 0 {
				sw.code = http.StatusOK // a handler that wrote nothing answers 200
			}
			a.metrics.answered(sw.code)
		}()
		next(sw, r)
	}
}

// parseBurn reads a CPU cost: a Go duration between 0 and maxBurn.
func parseBurn(value string) (time.Duration, error) {
	d, err := time.ParseDuration(value)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: give e.g. 20ms", value)
	}
	if d < 0 || d > maxBurn {
		return 0, fmt.Errorf("%s is out of range: give 0 to %s", d, maxBurn)
	}
	return d, nil
}

// burn keeps the calling goroutine busy until its thread has used d of CPU time, and answers the CPU time
// used. The thread's CPU clock, not the wall clock: a request then costs d of CPU however busy the machine is
// (on a saturated pod it takes longer, as a real CPU-bound request does), so CPU utilisation follows
// throughput and the sizing of deploy/demo-hpa.yaml holds. A wall-clock loop would burn less than d whenever
// the thread is preempted. The goroutine is locked to its thread meanwhile, so the clock counts its work only.
// Where no thread clock is available (cpuclock_other.go) it falls back to a wall-clock loop.
func burn(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := threadCPU()
	x := uint64(1)
	for {
		for i := 0; i < 20000; i++ { // about 20 µs of work between reads of the clock
			x = x*6364136223846793005 + 1442695040888963407
		}
		if used := threadCPU() - start; used >= d {
			sink.Store(x)
			return used
		}
	}
}

var sink atomic.Uint64 // keeps the compiler from removing the busy loop

// threadCPU reads the calling thread's CPU clock (the wall clock where there is none).
var threadCPU = threadClock()

var started = time.Now()

func wallClock() time.Duration { return time.Since(started) }
