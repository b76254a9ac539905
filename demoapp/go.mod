module resilience-tests/demoapp

go 1.26
