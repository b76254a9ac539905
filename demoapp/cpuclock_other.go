//go:build !linux

package main

import "time"

// threadClock answers the wall clock: this platform's thread CPU clock is not read here.
func threadClock() func() time.Duration { return wallClock }
