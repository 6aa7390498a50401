package s3store

import (
	"strings"
	"testing"
)

var parseURLCases = []struct {
	in             string
	bucket, prefix string
	ok             bool
}{
	{"s3://bucket", "bucket", "", true},
	{"s3://bucket/", "bucket", "", true},
	{"s3://bucket/quics", "bucket", "quics", true},
	{"s3://bucket/a/b/", "bucket", "a/b", true},
	{"s3://bucket/a/b///", "bucket", "a/b", true},
	{"S3://bucket/x", "bucket", "x", true},
	{"s3://my.bucket-01/team/quics", "my.bucket-01", "team/quics", true},
	{"s3://abc/données/été", "abc", "données/été", true},
	{"s3://abc/...", "abc", "...", true},
	{"s3://abc/a..b/%2e%2e", "abc", "a..b/%2e%2e", true},
	{"s3://" + strings.Repeat("a", 63), strings.Repeat("a", 63), "", true},
	{"s3://abc/" + strings.Repeat("p", MaxPrefixLen), "abc", strings.Repeat("p", MaxPrefixLen), true},

	// Not an s3 URL.
	{"", "", "", false},
	{"bucket/prefix", "", "", false},
	{"https://bucket/prefix", "", "", false},
	{"s3:/bucket", "", "", false},
	{"s3://", "", "", false},
	// Bucket names S3 refuses.
	{"s3://ab", "", "", false},
	{"s3://" + strings.Repeat("a", 64), "", "", false},
	{"s3://Bucket", "", "", false},
	{"s3://bu_cket", "", "", false},
	{"s3://bu cket", "", "", false},
	{"s3://-bucket", "", "", false},
	{"s3://bucket-", "", "", false},
	{"s3://.bucket", "", "", false},
	{"s3://a..b", "", "", false},
	{"s3://a.-b", "", "", false},
	{"s3://a-.b", "", "", false},
	{"s3://192.168.1.10", "", "", false},
	{"s3://xn--bucket", "", "", false},
	{"s3://sthree-bucket", "", "", false},
	{"s3://bucket-s3alias", "", "", false},
	{"s3://bucket--ol-s3", "", "", false},
	{"s3://user:pw@bucket", "", "", false},
	{"s3://bucket:9000/x", "", "", false},
	// Prefixes that are not clean.
	{"s3://bucket//a", "", "", false},
	{"s3://bucket/a//b", "", "", false},
	{"s3://bucket/..", "", "", false},
	{"s3://bucket/a/../b", "", "", false},
	{"s3://bucket/./a", "", "", false},
	{"s3://bucket/a/.", "", "", false},
	{"s3://bucket/a\x00b", "", "", false},
	{"s3://bucket/a\nb", "", "", false},
	{"s3://bucket/a\x7fb", "", "", false},
	{"s3://bucket/a\\b", "", "", false},
	{"s3://bucket/a\xffb", "", "", false},
	{"s3://bucket/a?region=eu", "", "", false},
	{"s3://bucket/a#frag", "", "", false},
	{"s3://abc/" + strings.Repeat("p", MaxPrefixLen+1), "", "", false},
}

func TestParseURL(t *testing.T) {
	for _, c := range parseURLCases {
		bucket, prefix, err := ParseURL(c.in)
		if c.ok {
			if err != nil || bucket != c.bucket || prefix != c.prefix {
				t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q, nil", c.in, bucket, prefix, err, c.bucket, c.prefix)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseURL(%q) = %q, %q, nil; want an error", c.in, bucket, prefix)
		} else if !strings.Contains(err.Error(), "s3store") {
			t.Errorf("ParseURL(%q) error %q does not say where it comes from", c.in, err)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, c := range parseURLCases {
		f.Add(c.in)
		if c.ok {
			f.Add(storeURL(c.bucket, c.prefix) + "/")
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		bucket, prefix, err := ParseURL(s)
		if err != nil {
			return
		}
		if err := checkBucket(bucket); err != nil {
			t.Fatalf("ParseURL(%q) accepted bucket %q: %v", s, bucket, err)
		}
		if clean, err := cleanPrefix(prefix); err != nil || clean != prefix {
			t.Fatalf("ParseURL(%q) returned prefix %q that is not clean (%q, %v)", s, prefix, clean, err)
		}
		if strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") || strings.Contains(prefix, "//") ||
			strings.ContainsRune(prefix, 0) || len(prefix) > MaxPrefixLen {
			t.Fatalf("ParseURL(%q) returned prefix %q", s, prefix)
		}
		b2, p2, err := ParseURL(storeURL(bucket, prefix))
		if err != nil || b2 != bucket || p2 != prefix {
			t.Fatalf("round trip of %q: %q -> %q, %q, %v; want %q, %q", s, storeURL(bucket, prefix), b2, p2, err, bucket, prefix)
		}
	})
}

func TestConfigFromEnv(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want Config
	}{
		{"empty", nil, Config{}},
		{
			"quics variables",
			map[string]string{
				"QUICS_S3_ENDPOINT": "http://127.0.0.1:9000", "QUICS_S3_REGION": "eu-west-3",
				"QUICS_S3_ACCESS_KEY": "AK", "QUICS_S3_SECRET_KEY": "SK", "QUICS_S3_SESSION_TOKEN": "TOK",
				"QUICS_S3_INSECURE": "1",
			},
			Config{Endpoint: "http://127.0.0.1:9000", Region: "eu-west-3", AccessKey: "AK", SecretKey: "SK", SessionToken: "TOK", Insecure: true},
		},
		{
			"aws fallback",
			map[string]string{
				"AWS_ENDPOINT_URL": "https://s3.example.com", "AWS_DEFAULT_REGION": "us-west-2",
				"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_SESSION_TOKEN": "TOK",
			},
			Config{Endpoint: "https://s3.example.com", Region: "us-west-2", AccessKey: "AK", SecretKey: "SK", SessionToken: "TOK"},
		},
		{
			"service-specific aws endpoint and region win over the generic ones",
			map[string]string{
				"AWS_ENDPOINT_URL": "https://generic", "AWS_ENDPOINT_URL_S3": "https://s3only",
				"AWS_DEFAULT_REGION": "us-west-2", "AWS_REGION": "ap-south-1",
			},
			Config{Endpoint: "https://s3only", Region: "ap-south-1"},
		},
		{
			"quics wins over aws",
			map[string]string{
				"QUICS_S3_ENDPOINT": "q", "AWS_ENDPOINT_URL_S3": "a", "QUICS_S3_REGION": "qr", "AWS_REGION": "ar",
				"QUICS_S3_ACCESS_KEY": "qa", "AWS_ACCESS_KEY_ID": "aa", "QUICS_S3_SECRET_KEY": "qs", "AWS_SECRET_ACCESS_KEY": "as",
				"QUICS_S3_SESSION_TOKEN": "qt", "AWS_SESSION_TOKEN": "at",
			},
			Config{Endpoint: "q", Region: "qr", AccessKey: "qa", SecretKey: "qs", SessionToken: "qt"},
		},
		{"insecure true", map[string]string{"QUICS_S3_INSECURE": "TRUE"}, Config{Insecure: true}},
		{"insecure 0", map[string]string{"QUICS_S3_INSECURE": "0"}, Config{}},
		{"insecure yes is not a documented value", map[string]string{"QUICS_S3_INSECURE": "yes"}, Config{}},
	}
	for _, c := range cases {
		got := ConfigFromEnv(func(k string) string { return c.env[k] })
		if got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	cases := []struct {
		in       string
		insecure bool
		want     string // endpoint.String(), "" for an error
		ip       bool
	}{
		{"", false, "https://s3.amazonaws.com", false},
		{"s3.example.com", false, "https://s3.example.com", false},
		{"s3.example.com:9000", true, "http://s3.example.com:9000", false},
		{"http://127.0.0.1:9000", false, "http://127.0.0.1:9000", true},
		{"http://127.0.0.1:9000/", false, "http://127.0.0.1:9000", true},
		{"https://[::1]:9000", false, "https://[::1]:9000", true},
		{"HTTPS://s3.example.com", false, "https://s3.example.com", false},
		{"10.0.0.5", false, "https://10.0.0.5", true},
		{"https://s3.example.com", true, "", false}, // contradicts Insecure
		{"ftp://s3.example.com", false, "", false},
		{"https://s3.example.com/bucket", false, "", false},
		{"https://user:pw@s3.example.com", false, "", false},
		{"https://s3.example.com?x=1", false, "", false},
		{"http://", false, "", false},
		{"s3.example.com/path", false, "", false},
	}
	for _, c := range cases {
		ep, err := parseEndpoint(c.in, c.insecure)
		if c.want == "" {
			if err == nil {
				t.Errorf("parseEndpoint(%q, %v) = %s; want an error", c.in, c.insecure, ep)
			}
			continue
		}
		if err != nil || ep.String() != c.want || ep.isIP() != c.ip {
			t.Errorf("parseEndpoint(%q, %v) = %s (ip %v), %v; want %s (ip %v)", c.in, c.insecure, ep, ep.isIP(), err, c.want, c.ip)
		}
	}
}

func TestPartSizeFor(t *testing.T) {
	if got := partSizeFor(DefaultPartSize, 32<<20); got != DefaultPartSize {
		t.Errorf("32 MiB pack: part size %d, want %d", got, DefaultPartSize)
	}
	huge := int64(MinPartSize)*maxParts + 1
	ps := partSizeFor(MinPartSize, huge)
	if parts := (huge + ps - 1) / ps; parts > maxParts {
		t.Errorf("%d bytes in parts of %d: %d parts, more than S3's %d", huge, ps, parts, maxParts)
	}
}

func TestParseContentRange(t *testing.T) {
	cases := []struct {
		in            string
		start, length int64
		ok            bool
	}{
		{"bytes 0-9/100", 0, 10, true},
		{"bytes 90-99/100", 90, 10, true},
		{"bytes 5-5/*", 5, 1, true},
		{"bytes 9-0/100", 0, 0, false},
		{"bytes -1-5/100", 0, 0, false},
		{"bytes 0-9", 0, 0, false},
		{"items 0-9/100", 0, 0, false},
		{"bytes a-b/100", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, c := range cases {
		start, length, err := parseContentRange(c.in)
		if (err == nil) != c.ok || c.ok && (start != c.start || length != c.length) {
			t.Errorf("parseContentRange(%q) = %d, %d, %v; want %d, %d, ok=%v", c.in, start, length, err, c.start, c.length, c.ok)
		}
	}
}
