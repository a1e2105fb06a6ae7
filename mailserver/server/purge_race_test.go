package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/config"
	kimap "github.com/kubemail/kubemail/mailserver/imap"
	kstore "github.com/kubemail/kubemail/mailserver/store"
	"github.com/kubemail/kubemail/mailserver/tlsutil"
)

// gatedAuth is the server's Authenticator that, once armed, holds a successful login of one
// address after its password was checked and before the IMAP server opens the mailbox: the
// window in which a reload may purge it.
type gatedAuth struct {
	*auth.Authenticator
	user    string
	checked chan struct{} // a login of user passed the password check
	release chan struct{} // closed to let it go on
}

func (g *gatedAuth) Authenticate(ctx context.Context, remote net.Addr, username, password string) (*config.Mailbox, error) {
	mb, err := g.Authenticator.Authenticate(ctx, remote, username, password)
	if err == nil && username == g.user && g.checked != nil {
		g.checked <- struct{}{}
		<-g.release
	}
	return mb, err
}

// isAuthFailed says whether err is an IMAP NO [AUTHENTICATIONFAILED].
func isAuthFailed(err error) bool {
	var ierr *imap.Error
	return errors.As(err, &ierr) && ierr.Type == imap.StatusResponseTypeNo && ierr.Code == imap.ResponseCodeAuthenticationFailed
}

// The race CI caught: carol's login has its password checked against the config that still has
// her; a reload puts the config without her in force and purges her Maildir; then the login
// opens her mailbox. It must be refused and make no Maildir (before the store's tombstones it
// succeeded and made an empty Maildir that stayed for good). A Mailbox with her address, made
// again, then logs in to a new, empty mailbox. The server's own pieces (config, store, purger,
// putInForce, IMAP server, authenticator), wired as Run wires them, with only the login held.
func TestLoginCheckedBeforePurge(t *testing.T) {
	manifests := copySamples(t)
	writeFile(t, filepath.Join(manifests, "carol.yaml"), carol)
	dataDir := t.TempDir()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	hasher := auth.NewHasher()
	load := func() *config.Config {
		t.Helper()
		cfg, err := config.LoadManifests(manifests, hasher)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := load()
	live := config.NewLive(config.NewDirectory(cfg))
	st, err := kstore.Open(dataDir, log)
	if err != nil {
		t.Fatal(err)
	}
	purges := newPurger(dataDir, st, log)
	purges.apply(cfg)
	certFile, keyFile, err := tlsutil.SelfSigned(filepath.Join(dataDir, "tls"), "mx.example.test")
	if err != nil {
		t.Fatal(err)
	}
	tlsConfig, err := tlsutil.Config(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	gate := &gatedAuth{Authenticator: auth.NewAuthenticator(live), user: "carol@example.test"}
	srv := kimap.NewServer(kimap.Options{Store: st, Live: live, Auth: gate, TLS: tlsConfig, Logger: log})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(tls.NewListener(ln, tlsConfig))
	t.Cleanup(func() { srv.Close() })
	login := func() error {
		c, err := imapclient.DialTLS(ln.Addr().String(), &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.Login("carol@example.test", "carol-password").Wait(); err != nil {
			return err
		}
		data, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			return err
		}
		if data.NumMessages != 0 {
			return errors.New("carol's new INBOX is not empty")
		}
		return c.Logout().Wait()
	}

	// carol has mail and has logged in: she has a Maildir.
	if _, err := st.Deliver(context.Background(), []string{"carol@example.test"}, nil, strings.NewReader("Subject: hi\r\n\r\nhello\r\n")); err != nil {
		t.Fatal(err)
	}
	carolDir := filepath.Join(dataDir, "mail", "example.test", "carol")
	if _, err := os.Stat(carolDir); err != nil {
		t.Fatal(err)
	}

	gate.checked, gate.release = make(chan struct{}), make(chan struct{})
	result := make(chan error, 1)
	go func() { result <- login() }()
	select {
	case <-gate.checked: // her password checked against the config that has her
	case err := <-result:
		t.Fatalf("the login ended before its password was checked: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the login's password was not checked within 10s")
	}
	// The reload: carol's Mailbox is deleted with reclaimPolicy Delete.
	if err := os.Remove(filepath.Join(manifests, "carol.yaml")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(manifests, "example-test.yaml"), purgeDomain("carol@example.test"))
	putInForce(live, purges, load())
	if _, err := os.Stat(carolDir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("carol's Maildir after the reload: %v, want it purged", err)
	}
	close(gate.release)
	if err := <-result; !isAuthFailed(err) {
		t.Errorf("the login checked before the purge: %v, want NO [AUTHENTICATIONFAILED]", err)
	}
	if _, err := os.Stat(carolDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the late login made carol a Maildir again: %v\n%s", err, logs.String())
	}
	if strings.Contains(logs.String(), `msg="Created mailbox" mailbox=carol@example.test`) {
		t.Errorf("the store created carol's mailbox after the purge:\n%s", logs.String())
	}
	if err := login(); err == nil {
		t.Error("carol logs in after the purge")
	}
	// A reload that changes nothing for her keeps her gone.
	putInForce(live, purges, load())
	if _, err := st.Account("carol@example.test"); !errors.Is(err, kstore.ErrMailboxRemoved) {
		t.Errorf("carol's account after a second reload: %v, want ErrMailboxRemoved", err)
	}

	// carol's Mailbox is made again (her address may stay in the purge list meanwhile).
	gate.checked = nil
	writeFile(t, filepath.Join(manifests, "carol.yaml"), carol)
	putInForce(live, purges, load())
	if err := login(); err != nil {
		t.Fatalf("the new carol's login: %v", err)
	}
	if _, err := os.Stat(filepath.Join(carolDir, "new")); err != nil {
		t.Errorf("the new carol has no Maildir: %v", err)
	}
}

// The same window for SMTP: a transaction past RCPT for carol whose data only comes once a
// reload has purged her mailbox gets 451 4.3.0 and stores nothing, so the sender retries and is
// then refused at RCPT (550); before the store's tombstones it was accepted into a new Maildir.
func TestDataAfterPurge(t *testing.T) {
	manifests := copySamples(t)
	dataDir := t.TempDir()
	writeFile(t, filepath.Join(manifests, "carol.yaml"), carol)
	srv := startServer(t, manifests, func(o *Options) { o.DataDir = dataDir })
	if err := sendMail(srv.addrs["smtp"], "carol@example.test"); err != nil {
		t.Fatal(err)
	}
	carolDir := filepath.Join(dataDir, "mail", "example.test", "carol")

	c, err := gosmtp.Dial(srv.addrs["smtp"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("bob@example.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("carol@example.test", nil); err != nil {
		t.Fatalf("RCPT for carol before the purge: %v", err)
	}
	if err := os.Remove(filepath.Join(manifests, "carol.yaml")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(manifests, "example-test.yaml"), purgeDomain("carol@example.test"))
	eventually(t, "carol's Maildir is purged", func() error {
		if !strings.Contains(srv.log.String(), `msg="Purged a deleted mailbox" mailbox=carol@example.test`) {
			return errors.New("no purge logged yet")
		}
		return nil
	})
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if _, err := w.Write([]byte("Subject: late\r\n\r\nhello\r\n")); err != nil {
		t.Fatal(err)
	}
	var serr *gosmtp.SMTPError
	if err := w.Close(); !errors.As(err, &serr) || serr.Code != 451 || serr.EnhancedCode != (gosmtp.EnhancedCode{4, 3, 0}) {
		t.Errorf("the data after the purge: %v, want 451 4.3.0", err)
	}
	if _, err := os.Stat(carolDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the late data made carol a Maildir again: %v", err)
	}
	// The sender's retry is refused at RCPT: the address is no mailbox.
	if err := sendMail(srv.addrs["smtp"], "carol@example.test"); err == nil || !strings.Contains(err.Error(), "550") {
		t.Errorf("the retry: %v, want 550", err)
	}
}
