package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/kubemail/kubemail/mailserver/queue"
)

// SocketName is the admin socket's file name in the data dir.
const SocketName = "admin.sock"

// maxSocketPath is the longest unix socket path: sun_path is 108 bytes on Linux, with a NUL.
const maxSocketPath = 107

// SocketPath is the admin socket of the server using dataDir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// Queue is what the endpoint needs of the outbound queue; *queue.Queue is it.
type Queue interface {
	List() []queue.Info
	RetryNow(id string) error
	Delete(id string) error
}

// Message is one queued message as the API shows it.
type Message struct {
	ID          string       `json:"id"`
	From        string       `json:"from"` // "" is the null sender (a notice)
	Arrival     time.Time    `json:"arrival"`
	Size        int64        `json:"size"`
	Attempts    int          `json:"attempts"`
	NextAttempt time.Time    `json:"nextAttempt"`
	LastAttempt time.Time    `json:"lastAttempt,omitzero"`
	InFlight    bool         `json:"inFlight,omitempty"` // an attempt is running now
	Rcpts       []queue.Rcpt `json:"rcpts"`
}

// Server serves the API on the admin socket.
type Server struct {
	path string
	ln   net.Listener
	http *http.Server
	log  *slog.Logger
}

// ErrPathTooLong is returned by Listen when the data dir's path is too long for a socket.
var ErrPathTooLong = errors.New("path too long for a unix socket")

// Listen creates <dataDir>/admin.sock (mode 0600) for the queue q. Serve serves it; Close or
// Shutdown removes it.
func Listen(dataDir string, q Queue, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	path := SocketPath(dataDir)
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("admin socket %s answers: another server is using this data dir", path)
	}
	// Bound in a private directory and moved into place, so that nobody else can connect in
	// the moment between bind and chmod.
	tmp, err := os.MkdirTemp(dataDir, ".a")
	if err != nil {
		return nil, fmt.Errorf("creating the admin socket: %w", err)
	}
	defer os.RemoveAll(tmp)
	tmpPath := filepath.Join(tmp, "s")
	if len(tmpPath) > maxSocketPath || len(path) > maxSocketPath {
		return nil, fmt.Errorf("creating the admin socket: the data dir path %s is too long (at most about %d bytes): %w",
			dataDir, maxSocketPath-len(tmpPath)+len(dataDir), ErrPathTooLong)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmpPath, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("creating the admin socket: %w", err)
	}
	ln.SetUnlinkOnClose(false) // it is renamed: Close removes it by its final path
	if err := os.Chmod(tmpPath, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("creating the admin socket: %w", err)
	}
	if err := os.Rename(tmpPath, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("creating the admin socket: %w", err)
	}
	s := &Server{path: path, ln: ln, log: logger.With("component", "admin")}
	s.http = &http.Server{Handler: Handler(q, s.log), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	return s, nil
}

// Addr is the socket's path.
func (s *Server) Addr() string { return s.path }

// Serve answers requests until Close or Shutdown; it then returns http.ErrServerClosed.
func (s *Server) Serve() error {
	s.log.Info("Serving", "protocol", "admin", "addr", s.path)
	return s.http.Serve(s.ln)
}

// Shutdown stops accepting, waits for the requests under way up to ctx, and removes the socket.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	s.ln.Close()
	s.removeSocket()
	return err
}

// Close stops at once and removes the socket.
func (s *Server) Close() error {
	err := s.http.Close()
	s.ln.Close()
	s.removeSocket()
	return err
}

func (s *Server) removeSocket() {
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("Failed to remove the admin socket", "path", s.path, "err", err.Error())
	}
}

// Handler is the API over q, without the socket (tests and other transports).
func Handler(q Queue, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := handler{q: q, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/queue", h.list)
	mux.HandleFunc("POST /v1/queue/retry", h.retryAll)
	mux.HandleFunc("POST /v1/queue/{id}/retry", h.retry)
	mux.HandleFunc("DELETE /v1/queue/{id}", h.delete)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

type handler struct {
	q   Queue
	log *slog.Logger
}

func (h handler) list(w http.ResponseWriter, _ *http.Request) {
	infos := h.q.List()
	msgs := make([]Message, 0, len(infos))
	for _, in := range infos {
		msgs = append(msgs, Message{
			ID: in.ID, From: in.From, Arrival: in.Arrival, Size: in.Size, Attempts: in.Attempts,
			NextAttempt: in.NextAttempt, LastAttempt: in.LastAttempt, InFlight: in.InFlight, Rcpts: in.Rcpts,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": msgs})
}

func (h handler) retry(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := h.q.RetryNow(id); err != nil {
		h.fail(w, id, err)
		return
	}
	h.log.Info("Scheduled a retry now", "id", id, "by", "admin")
	writeJSON(w, http.StatusOK, map[string]int{"retried": 1})
}

func (h handler) retryAll(w http.ResponseWriter, _ *http.Request) {
	n := 0
	for _, in := range h.q.List() {
		// A message gone meanwhile (delivered, deleted) is simply not counted.
		if h.q.RetryNow(in.ID) == nil {
			n++
		}
	}
	h.log.Info("Scheduled a retry now", "messages", n, "by", "admin")
	writeJSON(w, http.StatusOK, map[string]int{"retried": n})
}

func (h handler) delete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := h.q.Delete(id); err != nil {
		h.fail(w, id, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"deleted": 1})
}

func (h handler) fail(w http.ResponseWriter, id string, err error) {
	if errors.Is(err, queue.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no message "+id+" in the queue")
		return
	}
	h.log.Error("Failed an admin request", "id", id, "err", err.Error())
	writeError(w, http.StatusInternalServerError, err.Error())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
