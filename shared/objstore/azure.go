package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// AzureOptions configures the Blob Storage client. At most one credential
// kind may be set; with none, the Azure default credential chain applies.
type AzureOptions struct {
	Account            string `yaml:"account" doc:"Storage account name (required unless connection_string names it)."`
	AccessKey          string `yaml:"access_key" secret:"true" doc:"Account access key (Shared Key)."`
	ConnectionString   string `yaml:"connection_string" secret:"true" doc:"Connection string (holds the account, its key or SAS, and the endpoint)."`
	SASToken           string `yaml:"sas_token" secret:"true" doc:"Shared access signature (the query string, with or without a leading ?); needs read, write, create, list and delete permission on the container's blobs."`
	UseManagedIdentity bool   `yaml:"use_managed_identity" default:"false" doc:"Authenticate with the managed identity of the host (system-assigned, or user-assigned through AZURE_CLIENT_ID)."`
	Endpoint           string `yaml:"endpoint" doc:"Blob service URL instead of https://<account>.blob.core.windows.net/ (Azurite, sovereign clouds), like http://127.0.0.1:10000/devstoreaccount1."`
}

// Azure is one container (under a prefix) through the azblob SDK.
type Azure struct {
	client    *azblob.Client
	container string
	prefix    string
	redact    *resilience.Redactor
}

// NewAzure builds the client.
func NewAzure(containerName, prefix string, o *AzureOptions) (*Azure, error) {
	serviceURL := strings.TrimSuffix(o.Endpoint, "/")
	if serviceURL == "" {
		serviceURL = "https://" + o.Account + ".blob.core.windows.net"
	}
	serviceURL += "/"
	var (
		client *azblob.Client
		err    error
	)
	switch {
	case o.ConnectionString != "":
		client, err = azblob.NewClientFromConnectionString(o.ConnectionString, nil)
	case o.AccessKey != "":
		var cred *azblob.SharedKeyCredential
		if cred, err = azblob.NewSharedKeyCredential(o.Account, o.AccessKey); err == nil {
			client, err = azblob.NewClientWithSharedKeyCredential(serviceURL, cred, nil)
		}
	case o.SASToken != "":
		client, err = azblob.NewClientWithNoCredential(serviceURL+"?"+strings.TrimPrefix(o.SASToken, "?"), nil)
	case o.UseManagedIdentity:
		var mi azidentity.ManagedIdentityCredentialOptions
		if id := os.Getenv("AZURE_CLIENT_ID"); id != "" {
			mi.ID = azidentity.ClientID(id)
		}
		var cred *azidentity.ManagedIdentityCredential
		if cred, err = azidentity.NewManagedIdentityCredential(&mi); err == nil {
			client, err = azblob.NewClient(serviceURL, cred, nil)
		}
	default:
		var cred *azidentity.DefaultAzureCredential
		if cred, err = azidentity.NewDefaultAzureCredential(nil); err == nil {
			client, err = azblob.NewClient(serviceURL, cred, nil)
		}
	}
	red := azureRedactor(o)
	if err != nil {
		return nil, fmt.Errorf("azure client: %s", red.Redact(err.Error()))
	}
	return &Azure{client: client, container: containerName, prefix: prefix, redact: red}, nil
}

// azureRedactor removes the configured secrets (and the key and SAS
// signature inside a connection string) from messages.
func azureRedactor(o *AzureOptions) *resilience.Redactor {
	secrets := []string{o.AccessKey, o.ConnectionString, o.SASToken, strings.TrimPrefix(o.SASToken, "?")}
	sas := []string{strings.TrimPrefix(o.SASToken, "?")}
	for _, part := range strings.Split(o.ConnectionString, ";") {
		if k, v, ok := strings.Cut(part, "="); ok {
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "accountkey":
				secrets = append(secrets, strings.TrimSpace(v))
			case "sharedaccesssignature":
				secrets = append(secrets, strings.TrimSpace(v))
				sas = append(sas, strings.TrimSpace(v))
			}
		}
	}
	for _, s := range sas {
		if q, err := url.ParseQuery(s); err == nil {
			if sig := q.Get("sig"); sig != "" {
				secrets = append(secrets, sig, url.QueryEscape(sig), url.PathEscape(sig))
			}
		}
	}
	return resilience.NewRedactor(secrets...)
}

func (s *Azure) URL() string { return "az://" + strings.TrimSuffix(s.container+"/"+s.prefix, "/") }

func (s *Azure) Get(ctx context.Context, key string) ([]byte, error) {
	resp, err := s.client.DownloadStream(ctx, s.container, join(s.prefix, key), nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, s.classify(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, s.classify(err)
	}
	return b, nil
}

func (s *Azure) Put(ctx context.Context, key string, body []byte) error {
	_, err := s.client.UploadBuffer(ctx, s.container, join(s.prefix, key), body, nil)
	return s.classify(err)
}

// PutIfAbsent sends If-None-Match: *, which Blob Storage answers with 409
// BlobAlreadyExists when the blob exists.
func (s *Azure) PutIfAbsent(ctx context.Context, key string, body []byte) error {
	any := azcore.ETagAny
	_, err := s.client.UploadBuffer(ctx, s.container, join(s.prefix, key), body, &azblob.UploadBufferOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: &any}},
	})
	if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
		return fmt.Errorf("%s: %w", key, ErrExists)
	}
	return s.classify(err)
}

func (s *Azure) List(ctx context.Context, prefix, startAfter string) ([]string, error) {
	full := join(s.prefix, prefix)
	p := s.client.NewListBlobsFlatPager(s.container, &container.ListBlobsFlatOptions{Prefix: &full})
	var keys []string
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.classify(err)
		}
		for _, b := range page.Segment.BlobItems {
			if b.Name == nil {
				continue
			}
			k := *b.Name
			if s.prefix != "" {
				k = strings.TrimPrefix(k, s.prefix+"/")
			}
			if k > startAfter {
				keys = append(keys, k)
			}
		}
	}
	return keys, nil
}

func (s *Azure) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteBlob(ctx, s.container, join(s.prefix, key), nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return nil
	}
	return s.classify(err)
}

func (s *Azure) Close() error { return nil }

// classify classifies by HTTP status and keeps secrets out of the message.
func (s *Azure) classify(err error) error {
	if err == nil {
		return nil
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		retryAfter := ""
		if re.RawResponse != nil {
			retryAfter = re.RawResponse.Header.Get("Retry-After")
		}
		err = classifyHTTP(re.StatusCode, retryAfter, err)
	} else {
		var af *azidentity.AuthenticationFailedError
		if errors.As(err, &af) {
			err = resilience.New(resilience.Auth, err)
		}
	}
	msg := err.Error()
	if clean := s.redact.Redact(msg); clean != msg {
		return resilience.New(resilience.ClassOf(err), errors.New(clean))
	}
	return err
}
