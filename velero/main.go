// Command velero: Velero's server and command line, pinned (go.mod) and built from the Go module proxy so
// that the local cluster can run Velero as a host process (resilience_tests/testbed/velero.py).
package main

import (
	"os"
	"path/filepath"

	"github.com/vmware-tanzu/velero/pkg/cmd"
	"github.com/vmware-tanzu/velero/pkg/cmd/velero"
)

func main() {
	cmd.CheckError(velero.NewCommand(filepath.Base(os.Args[0])).Execute())
}
