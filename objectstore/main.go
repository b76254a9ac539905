// Command objectstore: an S3-compatible object store for the local cluster's Velero, listening on 127.0.0.1 only
// and keeping its objects in one file (gofakes3 with its bolt backend, pinned in go.mod).
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "address to serve S3 on (this machine only)")
	data := flag.String("data", "", "folder for the store's database")
	bucket := flag.String("bucket", "velero", "bucket to create at start")
	flag.Parse()
	if host, _, err := net.SplitHostPort(*listen); err != nil || host != "127.0.0.1" {
		log.Fatalf("-listen %q: the store serves 127.0.0.1 only", *listen)
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		log.Fatal(err)
	}
	backend, err := s3bolt.NewFile(filepath.Join(*data, "objects.db"))
	if err != nil {
		log.Fatal(err)
	}
	if err := backend.CreateBucket(*bucket); err != nil && !gofakes3.IsAlreadyExists(err) {
		log.Fatal(err)
	}
	log.Fatal(http.ListenAndServe(*listen, gofakes3.New(backend).Server()))
}
