// bench/configwatch/main.go: the load generator of bench/config.sh.
//
// One run is one scenario against one system: -watchers watchers (autoglm
// long-polls, autoglm server-sent event streams, or etcd watch streams),
// each on its own key (-mode distinct) or all on one key (-mode same, the
// fan-out case). Then -rounds publishes, one at a time: each is timed from
// its send to its acknowledgement and to every watcher's notification, and
// the next one waits until every watcher is notified and waiting again,
// plus -gap. Then, with the watchers still attached, publishes per second
// for -duration with each publisher count in -publishers, after each of
// which every watcher must come to hold its key's final value. It prints
// one JSON object on stdout.
//
// Every published content is "round=NNNNNNNN\n" padded to 64 bytes, so a
// notification names its round: etcd's events carry the value, autoglm's
// carry the md5, which the publisher records before it sends.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

var epoch = time.Now()

// now is monotonic nanoseconds since the start.
func now() int64 { return int64(time.Since(epoch)) }

const contentLen = 64

func content(round int) string {
	s := fmt.Sprintf("round=%08d\n", round)
	return s + strings.Repeat("x", contentLen-len(s)-1) + "\n"
}

func roundOf(c []byte) int {
	if len(c) < 14 || !bytes.HasPrefix(c, []byte("round=")) {
		return -1
	}
	r, err := strconv.Atoi(string(c[6:14]))
	if err != nil {
		return -1
	}
	return r
}

// md5s maps the md5 of every content published so far to its round.
var md5s sync.Map

func register(round int) string {
	c := content(round)
	sum := md5.Sum([]byte(c))
	md5s.Store(hex.EncodeToString(sum[:]), round)
	return c
}

func roundOfMd5(m string) int {
	if r, ok := md5s.Load(strings.ToLower(m)); ok {
		return r.(int)
	}
	return -1
}

// A system under test.
type target interface {
	// prepare creates what the keys live in and publishes round 0 to each.
	prepare(ctx context.Context, keys []string) error
	// publish publishes content to key, on publisher p's own connection.
	publish(ctx context.Context, p int, key, content string) error
	// watch follows key until ctx ends: ready once it is registered, seen
	// on each notification, armed(true/false) around each wait.
	watch(ctx context.Context, i int, key string, w *watcher)
	// current is the round key holds now.
	current(ctx context.Context, key string) (int, error)
	close()
}

type watcher struct {
	key     int
	last    atomic.Int64 // the highest round seen
	cur     atomic.Int64 // the round of the latest notification
	curAt   atomic.Int64 // and when it came
	readied atomic.Bool
}

type run struct {
	mode     string
	watchers []*watcher
	keys     []string
	rounds   int
	perRound int
	lat      [][]int64 // [round][slot] notification time, 0 until notified
	count    []atomic.Int32
	done     []chan struct{}
	ready    sync.WaitGroup
	armed    atomic.Int64 // watchers waiting right now
	notes    atomic.Int64 // notifications of a round above the watcher's last
	errs     atomic.Int64
	errMu    sync.Mutex
	firstErr string
}

func (r *run) fail(err error) {
	r.errs.Add(1)
	r.errMu.Lock()
	if r.firstErr == "" {
		r.firstErr = err.Error()
	}
	r.errMu.Unlock()
}

// keyOfRound: the key a round publishes. In distinct mode the latency rounds
// 1..rounds publish keys 0..rounds-1 once each; later rounds cycle.
func (r *run) keyOfRound(round int) int {
	if r.mode == "same" {
		return 0
	}
	if round <= r.rounds {
		return round - 1
	}
	return round % len(r.keys)
}

func (r *run) isReady(w *watcher) {
	if w.readied.CompareAndSwap(false, true) {
		r.ready.Done()
	}
}

func (r *run) setArmed(on bool) {
	if on {
		r.armed.Add(1)
	} else {
		r.armed.Add(-1)
	}
}

// seen records that watcher i learned its key holds round at time t.
func (r *run) seen(i int, round int, t int64) {
	if round < 0 {
		r.fail(fmt.Errorf("watcher %d: a notification of unknown content", i))
		return
	}
	w := r.watchers[i]
	w.cur.Store(int64(round))
	w.curAt.Store(t)
	prev := w.last.Load()
	for {
		if int64(round) <= prev {
			return
		}
		if w.last.CompareAndSwap(prev, int64(round)) {
			break
		}
		prev = w.last.Load()
	}
	r.notes.Add(1)
	// Latency rounds in (prev, round] of this watcher's key, coalesced or not.
	for rr := int(prev) + 1; rr <= round && rr <= r.rounds; rr++ {
		if rr < 1 || r.keyOfRound(rr) != w.key {
			continue
		}
		slot := 0
		if r.mode == "same" {
			slot = i
		}
		if atomic.CompareAndSwapInt64(&r.lat[rr][slot], 0, t) {
			if int(r.count[rr].Add(1)) == r.perRound {
				close(r.done[rr])
			}
		}
	}
}

type dist struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func summarize(ns []int64) dist {
	if len(ns) == 0 {
		return dist{}
	}
	v := append([]int64(nil), ns...)
	sort.Slice(v, func(a, b int) bool { return v[a] < v[b] })
	at := func(q float64) float64 {
		i := int(q*float64(len(v))+0.999999) - 1 // nearest rank
		if i < 0 {
			i = 0
		}
		if i >= len(v) {
			i = len(v) - 1
		}
		return ms(v[i])
	}
	return dist{N: len(v), P50: at(0.50), P99: at(0.99), Max: ms(v[len(v)-1])}
}

func ms(ns int64) float64 { return float64(ns/1000) / 1000 }

// cpuTicks is a process's user+system time in clock ticks (1/100 s).
func cpuTicks(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return float64(int(kb/1024*10)) / 10
		}
	}
	return 0
}

func selfCPUms() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
}

type throughput struct {
	Publishers     int     `json:"publishers"`
	Publishes      int     `json:"publishes"`
	PerSecond      float64 `json:"per_s"`
	PublishMs      dist    `json:"publish_ms"`
	Notifications  int64   `json:"notifications"`
	Converged      int     `json:"converged"`
	SettleMs       float64 `json:"settle_ms"` // last acknowledgement to the last final notification
	ServerCPUPerOp float64 `json:"server_cpu_ms_per_publish"`
	ServerCPUShare float64 `json:"server_cpu_cores"`
	ClientCPUShare float64 `json:"client_cpu_cores"`
}

type result struct {
	System        string       `json:"system"`
	Watch         string       `json:"watch"`
	Mode          string       `json:"mode"`
	Watchers      int          `json:"watchers"`
	Keys          int          `json:"keys"`
	Rounds        int          `json:"rounds"`
	SetupS        float64      `json:"setup_s"`
	ServerRSSMiB  float64      `json:"server_rss_mib_watching"`
	NotifyMs      dist         `json:"notify_ms"`
	AckToNotifyMs dist         `json:"ack_to_notify_ms"`
	PublishMs     dist         `json:"publish_ms"`
	LastWatcherMs dist         `json:"last_watcher_ms"`
	Missed        int          `json:"missed"`
	ServerCPUPerR float64      `json:"server_cpu_ms_per_round"`
	Throughput    []throughput `json:"throughput"`
	Errors        int64        `json:"errors"`
	FirstError    string       `json:"first_error,omitempty"`
}

func main() {
	system := flag.String("system", "autoglm", "autoglm or etcd")
	watchKind := flag.String("watch", "long-poll", "autoglm: long-poll or sse")
	addr := flag.String("addr", "", "autoglm: http://host:port; etcd: host:port")
	token := flag.String("token", "", "autoglm: the bearer token")
	env := flag.String("env", "bench", "the environment (etcd: a path segment)")
	group := flag.String("group", "bench", "the group (etcd: a path segment)")
	mode := flag.String("mode", "distinct", "distinct (a key per watcher) or same (one key)")
	nWatchers := flag.Int("watchers", 1000, "watchers")
	rounds := flag.Int("rounds", 1000, "publishes timed one at a time (distinct: at most -watchers)")
	gap := flag.Duration("gap", 10*time.Millisecond, "pause after each timed round")
	duration := flag.Duration("duration", 5*time.Second, "length of each throughput phase")
	pubs := flag.String("publishers", "1,8", "publisher counts of the throughput phases")
	pid := flag.Int("pid", 0, "the server's pid, for its CPU time and memory")
	etcdConns := flag.Int("etcd-conns", 0, "etcd: client connections the watchers share (0: one each)")
	flag.Parse()

	var publishers []int
	for _, p := range strings.Split(*pubs, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			die("bad -publishers %q", *pubs)
		}
		publishers = append(publishers, n)
	}
	maxPub := 1
	for _, p := range publishers {
		maxPub = max(maxPub, p)
	}

	r := &run{mode: *mode}
	switch *mode {
	case "distinct":
		for i := range *nWatchers {
			r.keys = append(r.keys, fmt.Sprintf("k-%04d", i+1))
		}
		r.rounds = min(*rounds, *nWatchers)
		r.perRound = 1
	case "same":
		r.keys = []string{"shared"}
		r.rounds = *rounds
		r.perRound = *nWatchers
	default:
		die("-mode is distinct or same")
	}
	for i := range *nWatchers {
		w := &watcher{key: 0}
		if *mode == "distinct" {
			w.key = i
		}
		r.watchers = append(r.watchers, w)
	}
	r.lat = make([][]int64, r.rounds+1)
	r.count = make([]atomic.Int32, r.rounds+1)
	r.done = make([]chan struct{}, r.rounds+1)
	for i := range r.lat {
		r.lat[i] = make([]int64, r.perRound)
		r.done[i] = make(chan struct{})
	}

	var t target
	switch *system {
	case "autoglm":
		if *watchKind != "long-poll" && *watchKind != "sse" {
			die("-watch is long-poll or sse")
		}
		a := newAutoglm(*addr, *token, *env, *group, *watchKind == "sse", maxPub, *nWatchers)
		a.run = r
		t = a
	case "etcd":
		*watchKind = "watch"
		conns := *etcdConns
		if conns <= 0 {
			conns = *nWatchers
		}
		e, err := newEtcd(*addr, *env, *group, conns, maxPub)
		if err != nil {
			die("etcd: %v", err)
		}
		e.run = r
		t = e
	default:
		die("-system is autoglm or etcd")
	}
	defer t.close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := result{System: *system, Watch: *watchKind, Mode: *mode, Watchers: *nWatchers, Keys: len(r.keys), Rounds: r.rounds}

	// --- setup: keys at round 0, watchers registered -----------------------
	setup := now()
	register(0)
	if err := t.prepare(ctx, r.keys); err != nil {
		die("prepare: %v", err)
	}
	r.ready.Add(len(r.watchers))
	for i, w := range r.watchers {
		go t.watch(ctx, i, r.keys[w.key], w)
	}
	if !waitGroup(&r.ready, 60*time.Second) {
		die("watchers not ready after 60 s (%d errors; first: %s)", r.errs.Load(), r.firstErr)
	}
	if !r.waitArmed(30 * time.Second) {
		die("watchers not all waiting after 30 s (%d of %d)", r.armed.Load(), len(r.watchers))
	}
	time.Sleep(500 * time.Millisecond) // the last registrations land
	res.SetupS = ms(now()-setup) / 1000
	res.ServerRSSMiB = rssMiB(*pid)
	log("%s %s %s: %d watchers ready in %.1f s", *system, *watchKind, *mode, len(r.watchers), res.SetupS)

	// --- publish-to-notify, one round at a time ----------------------------
	send := make([]int64, r.rounds+1)
	ack := make([]int64, r.rounds+1)
	cpu0 := cpuTicks(*pid)
	for round := 1; round <= r.rounds; round++ {
		c := register(round)
		key := r.keys[r.keyOfRound(round)]
		send[round] = now()
		if err := t.publish(ctx, 0, key, c); err != nil {
			die("publish round %d: %v", round, err)
		}
		ack[round] = now()
		select {
		case <-r.done[round]:
		case <-time.After(5 * time.Second):
			log("round %d: %d of %d watchers notified after 5 s", round, r.count[round].Load(), r.perRound)
		}
		r.waitArmed(5 * time.Second)
		time.Sleep(*gap)
	}
	cpu1 := cpuTicks(*pid)
	res.ServerCPUPerR = float64((cpu1-cpu0)*10) / float64(r.rounds)
	var notify, ackTo, pub, last []int64
	for round := 1; round <= r.rounds; round++ {
		pub = append(pub, ack[round]-send[round])
		var worst int64
		complete := true
		for _, at := range r.lat[round] {
			if at == 0 {
				res.Missed++
				complete = false
				continue
			}
			notify = append(notify, at-send[round])
			ackTo = append(ackTo, at-ack[round])
			worst = max(worst, at-send[round])
		}
		if complete {
			last = append(last, worst)
		}
	}
	res.NotifyMs, res.PublishMs, res.LastWatcherMs = summarize(notify), summarize(pub), summarize(last)
	res.AckToNotifyMs = summarize(ackTo)
	log("notify p50 %.2f ms p99 %.2f ms max %.2f ms (n %d, missed %d); publish p50 %.2f ms",
		res.NotifyMs.P50, res.NotifyMs.P99, res.NotifyMs.Max, res.NotifyMs.N, res.Missed, res.PublishMs.P50)

	// --- publishes per second with the watchers attached --------------------
	next := atomic.Int64{}
	next.Store(int64(r.rounds))
	for _, p := range publishers {
		tp := throughput{Publishers: p}
		notes0, cpu0, self0 := r.notes.Load(), cpuTicks(*pid), selfCPUms()
		start := now()
		deadline := start + int64(*duration)
		lats := make([][]int64, p)
		var wg sync.WaitGroup
		for g := range p {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for now() < deadline {
					round := int(next.Add(1))
					c := register(round)
					t0 := now()
					if err := t.publish(ctx, g, r.keys[r.keyOfRound(round)], c); err != nil {
						r.fail(fmt.Errorf("publish: %w", err))
						continue
					}
					lats[g] = append(lats[g], now()-t0)
				}
			}()
		}
		wg.Wait()
		end := now()
		cpu1, self1 := cpuTicks(*pid), selfCPUms()
		var all []int64
		for _, l := range lats {
			all = append(all, l...)
		}
		tp.Publishes = len(all)
		tp.PerSecond = float64(int(float64(len(all))/(float64(end-start)/1e9)*10)) / 10
		tp.PublishMs = summarize(all)
		tp.ServerCPUPerOp = float64((cpu1-cpu0)*10) / float64(max(1, len(all)))
		tp.ServerCPUShare = float64(int(float64((cpu1-cpu0)*10)/(float64(end-start)/1e6)*100)) / 100
		tp.ClientCPUShare = float64(int((self1-self0)/(float64(end-start)/1e6)*100)) / 100
		// Every watcher must come to hold its key's final value.
		final := make([]int, len(r.keys))
		var fwg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for k := range r.keys {
			fwg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; fwg.Done() }()
				v, err := t.current(ctx, r.keys[k])
				if err != nil {
					r.fail(fmt.Errorf("current %s: %w", r.keys[k], err))
				}
				final[k] = v
			}()
		}
		fwg.Wait()
		settleFrom := now()
		for {
			tp.Converged = 0
			for _, w := range r.watchers {
				if int(w.cur.Load()) == final[w.key] {
					tp.Converged++
				}
			}
			if tp.Converged == len(r.watchers) || now()-settleFrom > int64(15*time.Second) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		// From the last acknowledgement to the last watcher's final notification.
		var lastAt int64
		for _, w := range r.watchers {
			lastAt = max(lastAt, w.curAt.Load())
		}
		tp.SettleMs = ms(max(0, lastAt-end))
		r.waitArmed(5 * time.Second)
		tp.Notifications = r.notes.Load() - notes0
		log("%d publishers: %.0f publishes/s (p50 %.2f ms, p99 %.2f ms); %d notifications; %d of %d watchers converged",
			p, tp.PerSecond, tp.PublishMs.P50, tp.PublishMs.P99, tp.Notifications, tp.Converged, len(r.watchers))
		res.Throughput = append(res.Throughput, tp)
		time.Sleep(200 * time.Millisecond)
	}

	res.Errors, res.FirstError = r.errs.Load(), r.firstErr
	cancel()
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}

func (r *run) waitArmed(limit time.Duration) bool {
	end := time.Now().Add(limit)
	for r.armed.Load() < int64(len(r.watchers)) {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(200 * time.Microsecond)
	}
	return true
}

func waitGroup(wg *sync.WaitGroup, limit time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(limit):
		return false
	}
}

func log(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] configwatch: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func die(format string, args ...any) {
	log("error: "+format, args...)
	os.Exit(1)
}

// ---------------------------------------------------------------- autoglm --

type autoglm struct {
	base, token, env, group string
	sse                     bool
	watchers                *http.Client
	publishers              []*http.Client
	run                     *run
}

func newAutoglm(base, token, env, group string, sse bool, pubs, watchers int) *autoglm {
	a := &autoglm{base: strings.TrimRight(base, "/"), token: token, env: env, group: group, sse: sse}
	a.watchers = &http.Client{Transport: &http.Transport{
		MaxIdleConns: watchers + 16, MaxIdleConnsPerHost: watchers + 16,
		DisableCompression: true, IdleConnTimeout: 5 * time.Minute,
	}}
	for range pubs + 1 {
		a.publishers = append(a.publishers, &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: 1, DisableCompression: true,
		}})
	}
	return a
}

func (a *autoglm) keyURL(key string) string {
	return fmt.Sprintf("%s/api/v1/config/environments/%s/keys/%s/%s", a.base,
		url.PathEscape(a.env), url.PathEscape(a.group), url.PathEscape(key))
}

func (a *autoglm) do(ctx context.Context, c *http.Client, method, u string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (a *autoglm) prepare(ctx context.Context, keys []string) error {
	body, _ := json.Marshal(map[string]string{"name": a.env})
	code, b, err := a.do(ctx, a.publishers[0], "POST", a.base+"/api/v1/config/environments", body)
	if err != nil {
		return err
	}
	if code != 201 && code != 409 {
		return fmt.Errorf("creating environment %s: %d %s", a.env, code, b)
	}
	return parallel(len(a.publishers), len(keys), func(p, k int) error {
		return a.publish(ctx, p, keys[k], content(0))
	})
}

func (a *autoglm) publish(ctx context.Context, p int, key, c string) error {
	body, _ := json.Marshal(map[string]string{"content": c})
	code, b, err := a.do(ctx, a.publishers[p], "PUT", a.keyURL(key), body)
	if err != nil {
		return err
	}
	if code != 200 && code != 201 {
		return fmt.Errorf("PUT %s: %d %s", key, code, b)
	}
	return nil
}

func (a *autoglm) current(ctx context.Context, key string) (int, error) {
	code, b, err := a.do(ctx, a.publishers[len(a.publishers)-1], "GET", a.keyURL(key), nil)
	if err != nil {
		return -1, err
	}
	if code != 200 {
		return -1, fmt.Errorf("GET %s: %d %s", key, code, b)
	}
	var v struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return -1, err
	}
	return roundOf([]byte(v.Content)), nil
}

type change struct {
	Key     string `json:"key"`
	Version int    `json:"version"`
	Md5     string `json:"md5"`
}

func (a *autoglm) watch(ctx context.Context, i int, key string, w *watcher) {
	r := a.run
	if a.sse {
		a.stream(ctx, i, key, w)
		return
	}
	held := "" // the first answer comes at once and proves the watch works
	for ctx.Err() == nil {
		body := fmt.Sprintf(`{"keys":[{"environment":%q,"group":%q,"key":%q,"md5":%q}],"timeoutMs":30000}`,
			a.env, a.group, key, held)
		r.setArmed(true)
		code, b, err := a.do(ctx, a.watchers, "POST", a.base+"/api/v1/config/watch", []byte(body))
		t := now()
		r.setArmed(false)
		if err != nil || code != 200 {
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				err = fmt.Errorf("watch %s: %d %s", key, code, b)
			}
			r.fail(err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var answer struct {
			Changed []change `json:"changed"`
		}
		if err := json.Unmarshal(b, &answer); err != nil {
			r.fail(err)
			continue
		}
		for _, c := range answer.Changed {
			held = c.Md5
			if !w.readied.Load() {
				r.isReady(w)
				continue
			}
			r.seen(i, roundOfMd5(c.Md5), t)
		}
	}
}

func (a *autoglm) stream(ctx context.Context, i int, key string, w *watcher) {
	r := a.run
	u := fmt.Sprintf("%s/api/v1/config/environments/%s/events?group=%s&key=%s", a.base,
		url.PathEscape(a.env), url.QueryEscape(a.group), url.QueryEscape(key))
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := a.watchers.Do(req)
	if err != nil {
		r.fail(err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		r.fail(fmt.Errorf("events %s: %d %s", key, resp.StatusCode, b))
		return
	}
	// The stream starts at the hub's revision when the request was handled.
	r.setArmed(true)
	r.isReady(w)
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			if ctx.Err() == nil {
				r.fail(fmt.Errorf("events %s: %w", key, err))
			}
			return
		}
		if data, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			t := now()
			var c change
			if err := json.Unmarshal(bytes.TrimSpace(data), &c); err != nil {
				r.fail(err)
				continue
			}
			r.seen(i, roundOfMd5(c.Md5), t)
		}
	}
}

func (a *autoglm) close() {}

// ------------------------------------------------------------------- etcd --

type etcd struct {
	prefix     string
	watchers   []*clientv3.Client
	publishers []*clientv3.Client
	run        *run
}

func newEtcd(endpoint, env, group string, conns, pubs int) (*etcd, error) {
	e := &etcd{prefix: "/config/" + env + "/" + group + "/"}
	dial := func() (*clientv3.Client, error) {
		return clientv3.New(clientv3.Config{
			Endpoints: []string{endpoint}, DialTimeout: 10 * time.Second, Logger: zap.NewNop(),
		})
	}
	for range conns {
		c, err := dial()
		if err != nil {
			return nil, err
		}
		e.watchers = append(e.watchers, c)
	}
	for range pubs + 1 {
		c, err := dial()
		if err != nil {
			return nil, err
		}
		e.publishers = append(e.publishers, c)
	}
	return e, nil
}

func (e *etcd) prepare(ctx context.Context, keys []string) error {
	return parallel(len(e.publishers), len(keys), func(p, k int) error {
		return e.publish(ctx, p, keys[k], content(0))
	})
}

func (e *etcd) publish(ctx context.Context, p int, key, c string) error {
	_, err := e.publishers[p].Put(ctx, e.prefix+key, c)
	return err
}

func (e *etcd) current(ctx context.Context, key string) (int, error) {
	resp, err := e.publishers[len(e.publishers)-1].Get(ctx, e.prefix+key)
	if err != nil {
		return -1, err
	}
	if len(resp.Kvs) != 1 {
		return -1, errors.New("no such key")
	}
	return roundOf(resp.Kvs[0].Value), nil
}

func (e *etcd) watch(ctx context.Context, i int, key string, w *watcher) {
	r := e.run
	c := e.watchers[i%len(e.watchers)]
	ch := c.Watch(ctx, e.prefix+key, clientv3.WithCreatedNotify())
	for resp := range ch {
		t := now()
		if resp.Created {
			r.setArmed(true)
			r.isReady(w)
			continue
		}
		if err := resp.Err(); err != nil {
			r.fail(err)
			continue
		}
		for _, ev := range resp.Events {
			r.seen(i, roundOf(ev.Kv.Value), t)
		}
	}
	if ctx.Err() == nil {
		r.fail(fmt.Errorf("watch %s ended", key))
	}
}

func (e *etcd) close() {
	for _, c := range append(e.watchers, e.publishers...) {
		c.Close()
	}
}

// parallel runs f(worker, item) for items 0..n-1 on `workers` goroutines.
func parallel(workers, n int, f func(worker, item int) error) error {
	var next atomic.Int64
	var first error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(w, i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
