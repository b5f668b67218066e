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

# The tests' images (where scripts/test.sh puts them): the VM tests' kernel,
# initramfs and cloud-init disk, and the example's images for the demo test,
# built from Debian packages, cached.
images:
	scripts/images.sh /var/cache/foldup-test
	scripts/cloudimage.sh /var/cache/foldup-test
	scripts/example-images.sh /var/cache/foldup-test/example

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Longer fuzzing: make fuzz FUZZTIME=10m
FUZZTIME ?= 1m
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./spec
	$(GO) test -run '^$$' -fuzz '^FuzzPlan$$' -fuzztime $(FUZZTIME) ./planner
	for t in FuzzDNS FuzzDHCP4 FuzzDHCPv6 FuzzRS; do \
		$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./dnsd || exit 1; \
	done

# schema.json, after editing internal/schemagen/foldup.json or upgrading compose-go.
generate:
	$(GO) generate ./...

clean:
	rm -rf bin .cache
