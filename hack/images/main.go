// Command images writes a FROM-scratch container image holding one static binary as an image
// tarball (the `docker save` format) that `ctr images import` loads, so the e2e cluster runs
// kubemail without Docker and without a registry. The image mirrors the Dockerfile's: the
// binary at /kubemail as the entrypoint, user 65532:65532 (distroless "nonroot", named in
// /etc/passwd and /etc/group), a world-writable /tmp, nothing else.
//
//	go run . -binary ../../bin/kubemail-linux -entrypoint /kubemail -user 65532:65532 \
//	    -tag ghcr.io/kubemail/kubemail:0.1.0 -out ../../bin/cluster-images/kubemail.tar
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	binary := flag.String("binary", "", "static binary to put into the image")
	entrypoint := flag.String("entrypoint", "/kubemail", "path of the binary in the image, also the entrypoint")
	user := flag.String("user", "65532:65532", "user:group the image runs as")
	tags := flag.String("tag", "", "comma-separated image references the tarball names")
	out := flag.String("out", "", "tarball to write")
	flag.Parse()
	if *binary == "" || *tags == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := build(*binary, *entrypoint, *user, strings.Split(*tags, ","), *out); err != nil {
		log.Fatalf("images: %v", err)
	}
}

func build(binary, entrypoint, user string, tags []string, out string) error {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return err
	}
	layerTar, err := rootfs(bin, entrypoint, user)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return fmt.Errorf("making the layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint = []string{entrypoint}
	cf.Config.User = user
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return err
	}
	refs := map[name.Tag]v1.Image{}
	for _, t := range tags {
		tag, err := name.NewTag(t, name.StrictValidation)
		if err != nil {
			return fmt.Errorf("tag %q: %w", t, err)
		}
		refs[tag] = img
	}
	tmp := out + ".tmp"
	if err := tarball.MultiRefWriteToFile(tmp, tagsToRefs(refs)); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return os.Rename(tmp, out)
}

func tagsToRefs(m map[name.Tag]v1.Image) map[name.Reference]v1.Image {
	r := make(map[name.Reference]v1.Image, len(m))
	for k, v := range m {
		r[k] = v
	}
	return r
}

// rootfs is the image's only layer: the binary, /etc/passwd and /etc/group naming the user, and
// /tmp. Fixed timestamps, so the same binary gives the same image digest.
func rootfs(bin []byte, entrypoint, user string) ([]byte, error) {
	uid, gid, ok := strings.Cut(user, ":")
	if !ok {
		gid = uid
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dir := func(p string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode, ModTime: epoch})
	}
	file := func(p string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	steps := []func() error{
		func() error { return dir("etc", 0o755) },
		func() error {
			return file("etc/passwd", 0o644, fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n", uid, gid))
		},
		func() error { return file("etc/group", 0o644, fmt.Appendf(nil, "root:x:0:\nnonroot:x:%s:\n", gid)) },
		func() error { return dir("tmp", 0o1777) },
		func() error { return file(strings.TrimPrefix(entrypoint, "/"), 0o755, bin) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
