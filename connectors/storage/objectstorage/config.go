package objectstorage

import (
	"fmt"
	"strings"

	"github.com/rivven/rivven-connect/shared/format"
	"github.com/rivven/rivven-connect/shared/objstore"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Provider names.
const (
	ProviderS3    = "s3"
	ProviderGCS   = "gcs"
	ProviderAzure = "azure"
	ProviderLocal = "local"
)

// Partitioning modes.
const (
	PartitionNone = "none"
	PartitionDay  = "day"
	PartitionHour = "hour"
)

// Config is the object-storage sink's config block.
type Config struct {
	Provider string `yaml:"provider" default:"s3" enum:"s3,gcs,azure,local" doc:"Storage provider: s3 (AWS S3 and S3-compatible stores such as MinIO, R2, Spaces), gcs, azure (Blob Storage) or local (a directory, for testing)."`
	Settings `yaml:",inline"`
}

// Settings is everything but the provider: shared by object-storage and
// the legacy names s3, gcs and azure-blob, which fix the provider.
type Settings struct {
	Bucket            string `yaml:"bucket" required:"true" doc:"Bucket (S3, GCS) or container (Azure) name; for local, a directory under local.root."`
	Prefix            string `yaml:"prefix" doc:"Key prefix of every object, like events or raw/orders (a trailing / is optional)."`
	format.Options    `yaml:",inline"`
	Partitioning      string `yaml:"partitioning" default:"none" enum:"none,day,hour" doc:"Hive-style time partitioning of keys by each event's timestamp (UTC): day adds year=YYYY/month=MM/day=DD/, hour adds hour=HH/ too. A batch spanning a boundary becomes one object per partition."`
	BatchSize         int    `yaml:"batch_size" default:"1000" min:"1" doc:"Most events per object; a larger batch becomes several objects. Records of a log are cut at windows of batch_size offsets ([0, n), [n, 2n), ...), so that a redelivery cut otherwise writes the same objects."`
	FlushIntervalSecs int    `yaml:"flush_interval_secs" default:"60" min:"0" doc:"Max wait before flush: a long-lived runner (run sink, local) gathers up to batch_size events for one object and writes a partial batch once the first of its events waited this long, even when no more arrive. Gathered events stay uncommitted on the topic. 0 writes whatever one fetch returns."`

	S3    *S3Options    `yaml:"s3" doc:"S3 options (provider: s3)."`
	GCS   *GCSOptions   `yaml:"gcs" doc:"Google Cloud Storage options (provider: gcs)."`
	Azure *AzureOptions `yaml:"azure" doc:"Azure Blob Storage options (provider: azure)."`
	Local *LocalOptions `yaml:"local" doc:"Local filesystem options (provider: local)."`
}

// S3Options configures the S3 client (shared/objstore holds it with
// the S3 writer, which the redshift sink stages its loads with).
type S3Options = objstore.S3Options

// GCSOptions configures the GCS client.
type GCSOptions struct {
	ServiceAccountPath string `yaml:"service_account_path" doc:"Path of a service-account JSON key file. When set it is used, even with use_adc: true (the explicit key wins)."`
	UseADC             bool   `yaml:"use_adc" default:"false" doc:"Use Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud, the metadata server) when service_account_path is empty. They are also used when both are unset, unless endpoint is set."`
	Endpoint           string `yaml:"endpoint" doc:"JSON API endpoint instead of Google's (fake-gcs-server, emulators), like http://127.0.0.1:4443/storage/v1/; with neither service_account_path nor use_adc, requests are then unauthenticated."`
}

// AzureOptions configures the Blob Storage client. At most one credential
// kind may be set; with none, the Azure default credential chain applies
// (environment, workload identity, managed identity, Azure CLI).
type AzureOptions struct {
	Account            string `yaml:"account" doc:"Storage account name (required unless connection_string names it)."`
	AccessKey          string `yaml:"access_key" secret:"true" doc:"Account access key (Shared Key)."`
	ConnectionString   string `yaml:"connection_string" secret:"true" doc:"Connection string (holds the account, its key or SAS, and the endpoint)."`
	SASToken           string `yaml:"sas_token" secret:"true" doc:"Shared access signature (the query string, with or without a leading ?); needs write, create and delete permission on the container's blobs."`
	UseManagedIdentity bool   `yaml:"use_managed_identity" default:"false" doc:"Authenticate with the managed identity of the host (system-assigned, or user-assigned through AZURE_CLIENT_ID)."`
	Endpoint           string `yaml:"endpoint" doc:"Blob service URL instead of https://<account>.blob.core.windows.net/ (Azurite, sovereign clouds), like http://127.0.0.1:10000/devstoreaccount1."`
}

// LocalOptions configures the local filesystem provider.
type LocalOptions struct {
	Root string `yaml:"root" doc:"Directory holding the bucket directories; objects go to root/bucket/key. Root and bucket are created when missing."`
}

// Validate checks what the tags cannot express.
func (c *Config) Validate() []spec.Problem { return c.Settings.validate(c.Provider) }

// validate checks the settings for a provider.
func (s *Settings) validate(provider string) []spec.Problem {
	ps := s.Options.Validate()
	switch provider {
	case ProviderS3, ProviderGCS, ProviderAzure, ProviderLocal:
	default:
		ps = append(ps, spec.Problem{Path: "provider", Message: fmt.Sprintf("unknown provider %q (allowed: s3, gcs, azure, local)", provider)})
	}
	switch {
	case strings.TrimSpace(s.Bucket) == "":
		ps = append(ps, spec.Problem{Path: "bucket", Message: "required: the bucket (S3, GCS), container (Azure) or directory under local.root (local)"})
	case strings.ContainsAny(s.Bucket, `/\`) || s.Bucket == "." || s.Bucket == "..":
		ps = append(ps, spec.Problem{Path: "bucket", Message: "a bucket name, not a path: no / or \\ (put folders in prefix)"})
	}
	for _, seg := range strings.Split(strings.ReplaceAll(s.Prefix, `\`, "/"), "/") {
		if seg == ".." || seg == "." {
			ps = append(ps, spec.Problem{Path: "prefix", Message: "no . or .. segments: keys are plain names, and for local they must stay inside the bucket"})
			break
		}
	}
	switch s.Partitioning {
	case "", PartitionNone, PartitionDay, PartitionHour:
	default:
		ps = append(ps, spec.Problem{Path: "partitioning", Message: fmt.Sprintf("unknown partitioning %q (allowed: none, day, hour)", s.Partitioning)})
	}
	if s.BatchSize < 1 {
		ps = append(ps, spec.Problem{Path: "batch_size", Message: "must be at least 1"})
	}
	if s.FlushIntervalSecs < 0 {
		ps = append(ps, spec.Problem{Path: "flush_interval_secs", Message: "must be at least 0"})
	}

	// A block of another provider is a mistake worth reporting: its
	// settings would be silently ignored.
	blocks := []struct {
		name string
		set  bool
	}{{ProviderS3, s.S3 != nil}, {ProviderGCS, s.GCS != nil}, {ProviderAzure, s.Azure != nil}, {ProviderLocal, s.Local != nil}}
	for _, b := range blocks {
		if b.set && b.name != provider {
			ps = append(ps, spec.Problem{Path: b.name, Message: fmt.Sprintf("%s options are set but provider is %s", b.name, provider)})
		}
	}
	switch provider {
	case ProviderS3:
		ps = append(ps, prefixProblems("s3", s.S3.Validate())...)
	case ProviderGCS:
		ps = append(ps, s.GCS.validate()...)
	case ProviderAzure:
		ps = append(ps, s.Azure.validate()...)
	case ProviderLocal:
		if s.Local == nil || strings.TrimSpace(s.Local.Root) == "" {
			ps = append(ps, spec.Problem{Path: "local.root", Message: "required with provider local: the directory holding the bucket directories"})
		}
	}
	return ps
}

func (o *GCSOptions) validate() []spec.Problem {
	if o == nil {
		return nil
	}
	var ps []spec.Problem
	// service_account_path with use_adc: true is the reference's own
	// example; the explicit key wins (newGCSStore), ADC is the fallback.
	if o.Endpoint != "" {
		ps = append(ps, objstore.CheckURL("gcs.endpoint", o.Endpoint)...)
	}
	return ps
}

func (o *AzureOptions) validate() []spec.Problem {
	if o == nil {
		return []spec.Problem{{Path: "azure", Message: "required with provider azure: account with a credential, or connection_string"}}
	}
	var ps []spec.Problem
	var kinds []string
	if o.AccessKey != "" {
		kinds = append(kinds, "access_key")
	}
	if o.ConnectionString != "" {
		kinds = append(kinds, "connection_string")
	}
	if o.SASToken != "" {
		kinds = append(kinds, "sas_token")
	}
	if o.UseManagedIdentity {
		kinds = append(kinds, "use_managed_identity")
	}
	if len(kinds) > 1 {
		ps = append(ps, spec.Problem{Path: "azure." + kinds[1], Message: fmt.Sprintf("choose one credential kind, not %s (allowed: access_key, connection_string, sas_token, use_managed_identity, or none for the default chain)", strings.Join(kinds, " and "))})
	}
	if o.ConnectionString == "" && o.Account == "" {
		ps = append(ps, spec.Problem{Path: "azure.account", Message: "required unless connection_string is set"})
	}
	if o.ConnectionString != "" && o.Endpoint != "" {
		ps = append(ps, spec.Problem{Path: "azure.endpoint", Message: "the connection string names the endpoint (BlobEndpoint=...); remove endpoint"})
	}
	if o.Endpoint != "" {
		ps = append(ps, objstore.CheckURL("azure.endpoint", o.Endpoint)...)
	}
	return ps
}

// legacyName fixes the provider of a legacy connector name.
type legacyName interface{ provider() string }

type legacyS3 struct{}
type legacyGCS struct{}
type legacyAzure struct{}

func (legacyS3) provider() string    { return ProviderS3 }
func (legacyGCS) provider() string   { return ProviderGCS }
func (legacyAzure) provider() string { return ProviderAzure }

// LegacyConfig is the config of the legacy names s3, gcs and azure-blob:
// object-storage's settings with the provider fixed by the name (catalog
// aliases cannot carry a setting, hence separate entries sharing Settings).
type LegacyConfig[P legacyName] struct {
	Provider string `yaml:"provider" enum:"s3,gcs,azure,local" doc:"Optional: the connector name fixes the provider (s3, gcs, or azure for azure-blob); when set it must agree."`
	Settings `yaml:",inline"`
}

// Validate checks the settings for the name's provider.
func (c *LegacyConfig[P]) Validate() []spec.Problem {
	var p P
	want := p.provider()
	if c.Provider != "" && c.Provider != want {
		return []spec.Problem{{Path: "provider", Message: fmt.Sprintf("this connector name writes to %s; use connector object-storage for provider %s", want, c.Provider)}}
	}
	return c.Settings.validate(want)
}

// config returns the equivalent object-storage config.
func (c *LegacyConfig[P]) config() *Config {
	var p P
	return &Config{Provider: p.provider(), Settings: c.Settings}
}

// prefixProblems puts a block's key in front of its problems' paths.
func prefixProblems(p string, ps []spec.Problem) []spec.Problem {
	for i := range ps {
		ps[i].Path = p + "." + ps[i].Path
	}
	return ps
}
