package s3store

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Part sizes of multipart uploads. S3 refuses parts under 5 MiB (except
// the last); 16 MiB keeps a 32 MiB pack to two parts.
const (
	DefaultPartSize = 16 << 20
	MinPartSize     = 5 << 20
	maxPartSize     = 5 << 30
	maxParts        = 10000
)

// MaxPrefixLen bounds a store prefix. S3 keys may be 1024 bytes; a pack key
// adds 25 ("/xx/0123456789abcdef.pack") and the bound leaves room to spare.
const MaxPrefixLen = 512

// defaultEndpoint is AWS S3's global endpoint; minio-go routes to the
// bucket's region from there.
const defaultEndpoint = "s3.amazonaws.com"

// Config says where a store's packs live and how to reach them.
type Config struct {
	Bucket string
	// Prefix is the folder of this store inside the bucket, without
	// leading or trailing slash ("" for the bucket's root).
	Prefix string
	// Endpoint is a URL (https://s3.example.com, http://127.0.0.1:9000)
	// or a bare host[:port], which means HTTPS unless Insecure. Empty
	// means AWS (s3.amazonaws.com).
	Endpoint string
	// Region is the bucket's region; empty lets the client ask the server.
	Region string

	AccessKey    string
	SecretKey    string
	SessionToken string

	// Insecure talks plain HTTP to a bare host:port endpoint.
	Insecure bool
	// PartSize is the size of multipart upload parts and the threshold
	// above which uploads are multipart: 0 means DefaultPartSize,
	// otherwise at least MinPartSize.
	PartSize int64
}

// ConfigFromEnv reads the endpoint, region and credentials from the
// environment through getenv (os.Getenv in production): the QUICS_S3_*
// variables first, then the usual AWS ones. Bucket and prefix come from the
// --store URL, not from here.
func ConfigFromEnv(getenv func(string) string) Config {
	first := func(names ...string) string {
		for _, n := range names {
			if v := getenv(n); v != "" {
				return v
			}
		}
		return ""
	}
	insecure := strings.ToLower(strings.TrimSpace(getenv("QUICS_S3_INSECURE")))
	return Config{
		Endpoint:     first("QUICS_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
		Region:       first("QUICS_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
		AccessKey:    first("QUICS_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID"),
		SecretKey:    first("QUICS_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"),
		SessionToken: first("QUICS_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN"),
		Insecure:     insecure == "1" || insecure == "true",
	}
}

// ParseURL splits a store URL s3://BUCKET[/PREFIX] into a bucket name that
// follows S3's naming rules and a clean prefix: no leading or trailing
// slash, no empty, "." or ".." segment, no control character, no
// backslash, valid UTF-8, at most MaxPrefixLen bytes. Trailing slashes are
// dropped, so s3://b/p/ and s3://b/p name the same store. '?' and '#' are
// refused rather than read as a query or fragment: settings travel in
// flags and the environment, not in the URL.
func ParseURL(s string) (bucket, prefix string, err error) {
	const scheme = "s3://"
	if len(s) < len(scheme) || !strings.EqualFold(s[:len(scheme)], scheme) {
		return "", "", fmt.Errorf("s3store: store URL %q: want s3://BUCKET[/PREFIX]", s)
	}
	bucket, prefix, _ = strings.Cut(s[len(scheme):], "/")
	if err := checkBucket(bucket); err != nil {
		return "", "", fmt.Errorf("s3store: store URL %q: %w", s, err)
	}
	prefix, err = cleanPrefix(prefix)
	if err != nil {
		return "", "", fmt.Errorf("s3store: store URL %q: %w", s, err)
	}
	return bucket, prefix, nil
}

// storeURL is the inverse of ParseURL.
func storeURL(bucket, prefix string) string {
	if prefix == "" {
		return "s3://" + bucket
	}
	return "s3://" + bucket + "/" + prefix
}

// checkBucket applies S3's rules for general purpose bucket names, so a
// typo fails here with a reason instead of as a signature or DNS error.
func checkBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %q: must be 3 to 63 characters long", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !isAlnum(c) && c != '.' && c != '-' {
			return fmt.Errorf("bucket name %q: only lowercase letters, digits, '.' and '-' are allowed", b)
		}
	}
	if !isAlnum(b[0]) || !isAlnum(b[len(b)-1]) {
		return fmt.Errorf("bucket name %q: must begin and end with a letter or digit", b)
	}
	for _, bad := range []string{"..", ".-", "-."} {
		if strings.Contains(b, bad) {
			return fmt.Errorf("bucket name %q: must not contain %q", b, bad)
		}
	}
	if ip := net.ParseIP(b); ip != nil {
		return fmt.Errorf("bucket name %q: must not look like an IP address", b)
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(b, p) {
			return fmt.Errorf("bucket name %q: the prefix %q is reserved", b, p)
		}
	}
	for _, s := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(b, s) {
			return fmt.Errorf("bucket name %q: the suffix %q is reserved", b, s)
		}
	}
	return nil
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// cleanPrefix drops trailing slashes and refuses anything that could make
// two spellings name one folder, or escape it in tools that treat keys as
// paths.
func cleanPrefix(p string) (string, error) {
	p = strings.TrimRight(p, "/")
	if p == "" {
		return "", nil
	}
	if len(p) > MaxPrefixLen {
		return "", fmt.Errorf("prefix is %d bytes, more than %d", len(p), MaxPrefixLen)
	}
	if !utf8.ValidString(p) {
		return "", errors.New("prefix is not valid UTF-8")
	}
	for _, r := range p {
		switch {
		case r < 0x20 || r == 0x7f:
			return "", fmt.Errorf("prefix %q has a control character", p)
		case r == '\\':
			return "", fmt.Errorf("prefix %q has a backslash", p)
		case r == '?' || r == '#':
			return "", fmt.Errorf("prefix %q has %q: the store URL takes no query or fragment; use flags or QUICS_S3_* variables", p, r)
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "":
			return "", fmt.Errorf("prefix %q has an empty segment (a leading or double slash)", p)
		case ".", "..":
			return "", fmt.Errorf("prefix %q has a %q segment", p, seg)
		}
	}
	return p, nil
}

// endpoint is where the client connects, and how it is shown.
type endpoint struct {
	host   string // host[:port]
	secure bool
}

func (e endpoint) String() string {
	if e.secure {
		return "https://" + e.host
	}
	return "http://" + e.host
}

// isIP reports whether the endpoint names an IP address, where
// virtual-host-style bucket addressing (bucket.host) cannot work.
func (e endpoint) isIP() bool {
	h := e.host
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return net.ParseIP(strings.Trim(h, "[]")) != nil
}

func parseEndpoint(s string, insecure bool) (endpoint, error) {
	if s == "" {
		return endpoint{host: defaultEndpoint, secure: !insecure}, nil
	}
	if !strings.Contains(s, "://") {
		if strings.ContainsAny(s, "/?#@") {
			return endpoint{}, fmt.Errorf("s3store: endpoint %q: want a URL or a bare host[:port]", s)
		}
		return endpoint{host: s, secure: !insecure}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("s3store: endpoint %q: %w", s, err)
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return endpoint{}, fmt.Errorf("s3store: endpoint %q: want scheme://host[:port] with no path, user or query", s)
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		return endpoint{host: u.Host}, nil
	case "https":
		if insecure {
			return endpoint{}, fmt.Errorf("s3store: endpoint %q is https but plain HTTP (insecure) was asked for; drop one", s)
		}
		return endpoint{host: u.Host, secure: true}, nil
	default:
		return endpoint{}, fmt.Errorf("s3store: endpoint %q: scheme must be http or https", s)
	}
}

// partSizeFor picks the part size for an upload of size bytes: the
// configured one, grown when the object would need more than S3's 10000
// parts.
func partSizeFor(configured, size int64) int64 {
	ps := configured
	if least := (size + maxParts - 1) / maxParts; ps < least {
		ps = least
	}
	return ps
}
