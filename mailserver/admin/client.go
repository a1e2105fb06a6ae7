package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Client calls the API of the server using one data dir.
type Client struct {
	path string
	http *http.Client
}

// ErrNotFound is the API's 404: no such queue ID.
var ErrNotFound = errors.New("no such message in the queue")

// ErrUnreachable wraps a failure to connect to the socket (no server running, or no permission).
var ErrUnreachable = errors.New("cannot reach the server's admin socket")

// NewClient returns a client for the server using dataDir. It connects at the first call.
func NewClient(dataDir string) *Client {
	path := SocketPath(dataDir)
	var d net.Dialer
	return &Client{path: path, http: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				c, err := d.DialContext(ctx, "unix", path)
				if err != nil {
					return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
				}
				return c, nil
			},
		},
	}}
}

// SocketPath is the socket the client connects to.
func (c *Client) SocketPath() string { return c.path }

// List returns the queued messages, oldest first.
func (c *Client) List(ctx context.Context) ([]Message, error) {
	var out struct {
		Messages []Message `json:"messages"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/queue", &out)
	return out.Messages, err
}

// Retry makes message id due now.
func (c *Client) Retry(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/v1/queue/"+url.PathEscape(id)+"/retry", nil)
}

// RetryAll makes every queued message due now and returns how many there were.
func (c *Client) RetryAll(ctx context.Context) (int, error) {
	var out struct {
		Retried int `json:"retried"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/queue/retry", &out)
	return out.Retried, err
}

// Delete removes message id from the queue without a notice to its sender.
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/queue/"+url.PathEscape(id), nil)
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://kubemail"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.Is(err, ErrUnreachable) && errors.As(err, &ue) {
			return ue.Err // without the `Get "http://kubemail/v1/queue":` of the http package
		}
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the admin reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		if e.Error == "" {
			e.Error = "admin endpoint: " + resp.Status
		}
		return &apiError{msg: e.Error, notFound: resp.StatusCode == http.StatusNotFound && path != "/v1/queue"}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decoding the admin reply: %w", err)
	}
	return nil
}

// apiError is the server's {"error": …}; a 404 for a queue ID is ErrNotFound.
type apiError struct {
	msg      string
	notFound bool
}

func (e *apiError) Error() string        { return e.msg }
func (e *apiError) Is(target error) bool { return e.notFound && target == ErrNotFound }
