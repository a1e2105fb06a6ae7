package msgauth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/kubemail/kubemail/internal/durable"
)

// KeyType is the algorithm of the DKIM keys Keys makes.
type KeyType string

const (
	RSA     KeyType = "rsa"     // RSA-2048, rsa-sha256: verified by every receiver (RFC 8301)
	Ed25519 KeyType = "ed25519" // ed25519-sha256 (RFC 8463): small, fast, not verified everywhere
)

// DefaultSelector is the DKIM selector when none is configured: the key of example.test is
// published at kubemail._domainkey.example.test.
const DefaultSelector = "kubemail"

// rsaBits is the size of the RSA keys made: RFC 8301 3.2 requires at least 1024 and recommends
// 2048, which still fits one DNS TXT record (as several strings, see TXTStrings).
const rsaBits = 2048

// KeysOptions configure Keys; the zero value is selector "kubemail", RSA-2048.
type KeysOptions struct {
	Selector string
	Type     KeyType // of keys made from now on; an existing key keeps its type
}

// Keys are the DKIM private keys of our domains, one PEM file per domain in a directory
// (<data>/dkim/<domain>.key). A missing key is made on first use and never replaced. Keys is
// safe for concurrent use.
type Keys struct {
	dir      string
	selector string
	keyType  KeyType

	mu   sync.Mutex
	keys map[string]crypto.Signer
}

// NewKeys returns the keys kept in dir (made when first needed).
func NewKeys(dir string, opts KeysOptions) *Keys {
	k := &Keys{dir: dir, selector: opts.Selector, keyType: opts.Type, keys: map[string]crypto.Signer{}}
	if k.selector == "" {
		k.selector = DefaultSelector
	}
	if k.keyType == "" {
		k.keyType = RSA
	}
	return k
}

// Selector is the DKIM selector of every key.
func (k *Keys) Selector() string { return k.selector }

// Path is the file of domain's key.
func (k *Keys) Path(domain string) string { return filepath.Join(k.dir, domain+".key") }

// Key returns domain's private key, reading it from its file, or making and writing one when
// there is no file yet.
func (k *Keys) Key(domain string) (crypto.Signer, error) {
	domain = strings.ToLower(domain)
	if domain == "" || strings.ContainsAny(domain, `/\`) || strings.HasPrefix(domain, ".") {
		return nil, fmt.Errorf("bad domain name %q for a DKIM key", domain)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.keys[domain]; ok {
		return key, nil
	}
	key, err := readKey(k.Path(domain))
	if errors.Is(err, fs.ErrNotExist) {
		key, err = k.create(domain)
	}
	if err != nil {
		return nil, err
	}
	k.keys[domain] = key
	return key, nil
}

// Ensure makes the keys of domains that have none yet (at start-up and on a config reload, so
// the DNS record can be published before the first message is sent).
func (k *Keys) Ensure(domains []string) error {
	var errs []error
	for _, d := range domains {
		if _, err := k.Key(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DNSRecord returns the name and value of the TXT record that publishes domain's public key
// (RFC 6376 3.6.1), e.g. "kubemail._domainkey.example.test." and "v=DKIM1; k=rsa; p=MIIB...".
// A value over 255 octets goes into one record as several strings: see TXTStrings.
func (k *Keys) DNSRecord(domain string) (name, value string, err error) {
	key, err := k.Key(domain)
	if err != nil {
		return "", "", err
	}
	name = k.selector + "._domainkey." + strings.ToLower(domain) + "."
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", "", fmt.Errorf("encoding the DKIM public key of %s: %w", domain, err)
		}
		return name, "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		// RFC 8463 4.2: the raw 32-byte key, not SubjectPublicKeyInfo.
		return name, "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub), nil
	}
	return "", "", fmt.Errorf("DKIM key of %s has an unsupported type %T", domain, key.Public())
}

// TXTStrings splits a TXT record value into the character-strings of at most 255 octets one
// record is made of (RFC 1035 3.3.14; RFC 6376 3.6.2.2: receivers concatenate them). A zone file
// line is: name IN TXT "string1" "string2".
func TXTStrings(value string) []string {
	var out []string
	for len(value) > 255 {
		out = append(out, value[:255])
		value = value[255:]
	}
	return append(out, value)
}

func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("DKIM key %s: no PEM block", path)
	}
	var key any
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("DKIM key %s: unexpected PEM block %q", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("DKIM key %s: %w", path, err)
	}
	switch key := key.(type) {
	case *rsa.PrivateKey:
		if key.N.BitLen() < 1024 {
			return nil, fmt.Errorf("DKIM key %s: RSA key of %d bits is too short (RFC 8301 3.2)", path, key.N.BitLen())
		}
		return key, nil
	case ed25519.PrivateKey:
		return key, nil
	}
	return nil, fmt.Errorf("DKIM key %s: unsupported key type %T", path, key)
}

// create makes a key for domain and writes it as PKCS#8 PEM, mode 0600: written to a temporary
// file, fsynced, then linked into place, which fails rather than replace a key another process
// wrote meanwhile (that key is then used), and the directory fsynced.
func (k *Keys) create(domain string) (crypto.Signer, error) {
	var key crypto.Signer
	var err error
	switch k.keyType {
	case Ed25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case RSA:
		key, err = rsa.GenerateKey(rand.Reader, rsaBits)
	default:
		return nil, fmt.Errorf("unknown DKIM key type %q", k.keyType)
	}
	if err != nil {
		return nil, fmt.Errorf("making the DKIM key of %s: %w", domain, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the DKIM key of %s: %w", domain, err)
	}
	if err := os.MkdirAll(k.dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the DKIM key directory: %w", err)
	}
	path := k.Path(domain)
	tmp, err := os.CreateTemp(k.dir, ".tmp-"+domain+"-*")
	if err != nil {
		return nil, fmt.Errorf("writing the DKIM key of %s: %w", domain, err)
	}
	defer os.Remove(tmp.Name())
	err = pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path)
	}
	if errors.Is(err, fs.ErrExist) {
		return readKey(path) // made meanwhile by someone else: never overwrite a key
	}
	if err != nil {
		return nil, fmt.Errorf("writing the DKIM key of %s: %w", domain, err)
	}
	if err := durable.SyncDir(k.dir); err != nil {
		return nil, fmt.Errorf("syncing the DKIM key directory: %w", err)
	}
	return key, nil
}
