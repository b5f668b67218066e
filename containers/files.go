package containers

import (
	"archive/tar"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/pkg/jsonmessage"
)

// FilesOwner is who owns the files of a BuildFiles image: KubeVirt's
// qemu user, which reads a containerDisk's disk and a kernelBoot
// container's kernel and initrd.
const FilesOwner = "107:107"

// BuildFiles builds an image of nothing but files (path in the image →
// file on this host), FROM scratch, owned by FilesOwner, and tags it tag.
// The build context is streamed, not held in memory: a disk image may be
// large.
func BuildFiles(ctx context.Context, dc Engine, tag string, files map[string]string, labels map[string]string, out io.Writer) error {
	paths := slices.Sorted(func(yield func(string) bool) {
		for p := range files {
			if !yield(p) {
				return
			}
		}
	})
	var dockerfile strings.Builder
	dockerfile.WriteString("FROM scratch\n")
	for i, p := range paths {
		fmt.Fprintf(&dockerfile, "COPY --chown=%s f%d %s\n", FilesOwner, i, p)
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeContext(pw, dockerfile.String(), paths, files))
	}()
	defer pr.Close()
	resp, err := dc.ImageBuild(ctx, pr, build.ImageBuildOptions{
		Tags: []string{tag}, Labels: labels, Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if err != nil {
		return fmt.Errorf("image %s: build: %w", tag, err)
	}
	defer resp.Body.Close()
	if out == nil {
		out = io.Discard
	}
	if err := jsonmessage.DisplayJSONMessagesStream(resp.Body, out, 0, false, nil); err != nil {
		return fmt.Errorf("image %s: build: %w", tag, err)
	}
	return nil
}

func writeContext(w io.Writer, dockerfile string, paths []string, files map[string]string) error {
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile))}); err != nil {
		return err
	}
	if _, err := io.WriteString(tw, dockerfile); err != nil {
		return err
	}
	for i, p := range paths {
		f, err := os.Open(files[p])
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err == nil && !fi.Mode().IsRegular() {
			err = fmt.Errorf("%s is not a regular file", files[p])
		}
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("f%d", i), Mode: 0o644, Size: fi.Size(), ModTime: fi.ModTime()})
		}
		if err == nil {
			_, err = io.Copy(tw, f)
		}
		f.Close()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// Push pushes ref to its registry, as the engine's credentials for it
// allow (none: an anonymous push).
func Push(ctx context.Context, dc Engine, ref string, out io.Writer) error {
	rc, err := dc.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: base64.URLEncoding.EncodeToString([]byte("{}"))})
	if err != nil {
		return fmt.Errorf("image %s: push: %w", ref, err)
	}
	defer rc.Close()
	if out == nil {
		out = io.Discard
	}
	if err := jsonmessage.DisplayJSONMessagesStream(rc, out, 0, false, nil); err != nil {
		return fmt.Errorf("image %s: push: %w", ref, err)
	}
	return nil
}
