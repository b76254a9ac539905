module resilience-tests/pause

go 1.26
