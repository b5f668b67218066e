# foldup. `make` builds bin/foldup; `make test` runs every test (see
# scripts/test.sh); `make demo` is the main job (scripts/demo.sh).
GO ?= $(shell scripts/go.sh)

.PHONY: build test demo images bench fuzz generate clean

build:
	$(GO) build -o bin/foldup ./cmd/foldup

test:
	scripts/test.sh

demo:
	scripts/demo.sh

# The VM tests' kernel and initramfs (where scripts/test.sh puts them),
# built from Debian packages, cached.
images:
	scripts/images.sh /var/cache/foldup-test
	scripts/cloudimage.sh /var/cache/foldup-test

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Longer fuzzing: make fuzz FUZZTIME=10m
FUZZTIME ?= 1m
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./spec
	$(GO) test -run '^$$' -fuzz '^FuzzPlan$$' -fuzztime $(FUZZTIME) ./planner

# schema.json, after editing internal/schemagen/foldup.json or upgrading compose-go.
generate:
	$(GO) generate ./...

clean:
	rm -rf bin .cache
