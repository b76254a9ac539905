package main

// The stateful mode (--data DIR): records kept in DIR/records.jsonl, one JSON object per line, each written
// and synced before it is acknowledged. The same store is reachable over HTTP and as subcommands, so a
// backup hook can run `demoapp export --data DIR` in the pod (exec, no shell needed) and a restore hook
// `demoapp import --data DIR` with the export on its standard input.
//
//	POST /records?value=V     write a record; answers its id
//	GET  /records?id=N        read one record
//	GET  /records/count       {"count": N}
//	GET  /records/checksum    {"count": N, "sha256": "..."}: the same records in the same order, the same sum
//	GET  /records/export      every record, JSON lines
//	POST /records/import      add the JSON lines of the body whose ids are not stored yet; answers the count

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

type record struct {
	ID    int64  `json:"id"`
	Value string `json:"value"`
}

// store is the records file and what this process has read of it. The file is the truth: the exec hooks
// (`demoapp import` in the same pod) append to it too, so every operation first reads what was added since.
type store struct {
	mu      sync.Mutex
	path    string
	size    int64 // bytes of the file read into records
	records []record
	ids     map[int64]bool
}

func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &store{path: filepath.Join(dir, "records.jsonl"), ids: map[int64]bool{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s, s.refreshLocked()
}

// refreshLocked reads the records another process appended since the last read (everything again if the
// file shrank or was replaced). A torn last line is left for the next read.
func (s *store) refreshLocked() error {
	info, err := os.Stat(s.path)
	if errors.Is(err, os.ErrNotExist) {
		s.size, s.records, s.ids = 0, nil, map[int64]bool{}
		return nil
	}
	if err != nil {
		return err
	}
	if info.Size() == s.size {
		return nil
	}
	if info.Size() < s.size {
		s.size, s.records, s.ids = 0, nil, map[int64]bool{}
	}
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(s.size, io.SeekStart); err != nil {
		return err
	}
	reader := bufio.NewReaderSize(f, 64*1024)
	for {
		line, err := reader.ReadBytes('\n')
		if err != nil { // the end, or a line still being written: read it next time
			return nil
		}
		s.size += int64(len(line))
		var r record
		if json.Unmarshal(line, &r) == nil && !s.ids[r.ID] {
			s.records = append(s.records, r)
			s.ids[r.ID] = true
		}
	}
}

func (s *store) appendLocked(add []record) error {
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if info, err := f.Stat(); err == nil && info.Size() > s.size {
		buf.WriteByte('\n') // after a line a crash cut short: start on a line of our own
	}
	for _, r := range add {
		line, _ := json.Marshal(r)
		buf.Write(append(line, '\n'))
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return s.refreshLocked() // what was just written, and anything another process appended before it
}

func (s *store) write(value string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refreshLocked(); err != nil {
		return 0, err
	}
	id := int64(1)
	if n := len(s.records); n > 0 {
		id = s.records[n-1].ID + 1
		for known := range s.ids { // ids imported out of order: stay above all of them
			if known >= id {
				id = known + 1
			}
		}
	}
	return id, s.appendLocked([]record{{ID: id, Value: value}})
}

func (s *store) get(id int64) (record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.refreshLocked()
	for _, r := range s.records {
		if r.ID == id {
			return r, true
		}
	}
	return record{}, false
}

func (s *store) checksum() (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.refreshLocked()
	sum := sha256.New()
	for _, r := range s.records {
		fmt.Fprintf(sum, "%d\t%s\n", r.ID, r.Value)
	}
	return len(s.records), hex.EncodeToString(sum.Sum(nil))
}

func (s *store) export(w io.Writer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refreshLocked(); err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	for _, r := range s.records {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// importFrom adds the records of r (JSON lines) whose ids are not stored yet; it answers how many it added.
func (s *store) importFrom(r io.Reader) (int, error) {
	var add []record
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 1024*1024), 1024*1024)
	for line := 1; scanner.Scan(); line++ {
		if len(bytes.TrimSpace(scanner.Bytes())) == 0 {
			continue
		}
		var rec record
		if err := json.Unmarshal(scanner.Bytes(), &rec); err != nil {
			return 0, fmt.Errorf("line %d: %v", line, err)
		}
		add = append(add, rec)
	}
	if err := scanner.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refreshLocked(); err != nil {
		return 0, err
	}
	var fresh []record
	seen := map[int64]bool{}
	for _, rec := range add {
		if !s.ids[rec.ID] && !seen[rec.ID] {
			fresh = append(fresh, rec)
			seen[rec.ID] = true
		}
	}
	if len(fresh) == 0 {
		return 0, nil
	}
	return len(fresh), s.appendLocked(fresh)
}

func (s *store) routes(mux *http.ServeMux, a *app) {
	mux.HandleFunc("/records", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Pod", a.pod)
		switch r.Method {
		case http.MethodPost:
			id, err := s.write(r.URL.Query().Get("value"))
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			fmt.Fprintf(w, "{\"id\": %d}\n", id)
		case http.MethodGet:
			id, err := strconv.ParseInt(r.URL.Query().Get("id"), 10, 64)
			if err != nil {
				http.Error(w, "give ?id=N", http.StatusBadRequest)
				return
			}
			rec, ok := s.get(id)
			if !ok {
				http.Error(w, "no such record", http.StatusNotFound)
				return
			}
			_ = json.NewEncoder(w).Encode(rec)
		default:
			http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
		}
	})
	mux.HandleFunc("/records/count", func(w http.ResponseWriter, _ *http.Request) {
		n, _ := s.checksum()
		w.Header().Set("X-Pod", a.pod)
		fmt.Fprintf(w, "{\"count\": %d}\n", n)
	})
	mux.HandleFunc("/records/checksum", func(w http.ResponseWriter, _ *http.Request) {
		n, sum := s.checksum()
		w.Header().Set("X-Pod", a.pod)
		fmt.Fprintf(w, "{\"count\": %d, \"sha256\": %q}\n", n, sum)
	})
	mux.HandleFunc("/records/export", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Pod", a.pod)
		_ = s.export(w)
	})
	mux.HandleFunc("/records/import", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST the JSON lines of an export", http.StatusMethodNotAllowed)
			return
		}
		n, err := s.importFrom(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "{\"imported\": %d}\n", n)
	})
}

// subcommand runs `demoapp count|checksum|export|import --data DIR` (for exec hooks); false if args name none.
func subcommand(args []string) bool {
	if len(args) < 1 {
		return false
	}
	verb := args[0]
	if verb != "count" && verb != "checksum" && verb != "export" && verb != "import" {
		return false
	}
	dir := ""
	for i := 1; i < len(args); i++ {
		if args[i] == "--data" && i+1 < len(args) {
			dir = args[i+1]
		} else if len(args[i]) > 7 && args[i][:7] == "--data=" {
			dir = args[i][7:]
		}
	}
	if dir == "" {
		fmt.Fprintf(os.Stderr, "demoapp %s: give --data DIR\n", verb)
		os.Exit(2)
	}
	s, err := openStore(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "demoapp %s: %v\n", verb, err)
		os.Exit(1)
	}
	switch verb {
	case "count":
		n, _ := s.checksum()
		fmt.Printf("{\"count\": %d}\n", n)
	case "checksum":
		n, sum := s.checksum()
		fmt.Printf("{\"count\": %d, \"sha256\": %q}\n", n, sum)
	case "export":
		err = s.export(os.Stdout)
	case "import":
		var n int
		n, err = s.importFrom(os.Stdin)
		if err == nil {
			fmt.Printf("{\"imported\": %d}\n", n)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "demoapp %s: %v\n", verb, err)
		os.Exit(1)
	}
	return true
}
