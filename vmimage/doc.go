// Package vmimage downloads VM base images named by URL and sha256 into a
// cache shared by every foldup on the machine.
//
// The cache is one flat directory (DefaultCacheDir). For an image whose
// digest is <hex> it holds:
//
//	sha256-<hex>               the verified image, 0644
//	sha256-<hex>.url           the URL it came from, one line (for people, not for lookups)
//	sha256-<hex>.partial       a download in progress or interrupted, resumed by the next Fetch
//	sha256-<hex>.partial.json  the partial's URL, ETag and Last-Modified, for If-Range
//	sha256-<hex>.lock          flock(2)ed by the Fetch working on the image (the file stays)
//
// An image is in the cache only under its verified digest, so a hit needs
// no request and no hashing.
//
// Fetch needs Linux (flock); elsewhere it returns an error. Tests run
// against httptest servers on 127.0.0.1 and need nothing else:
//
//	go test -race ./vmimage/
package vmimage
