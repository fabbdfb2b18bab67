package objectstorage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// azureStore writes to one Blob Storage container with the azblob SDK.
type azureStore struct {
	client    *azblob.Client
	container string
	account   string
	redact    *resilience.Redactor
}

func newAzureStore(container string, o *AzureOptions) (*azureStore, error) {
	serviceURL := strings.TrimSuffix(o.Endpoint, "/")
	if serviceURL == "" {
		serviceURL = "https://" + o.Account + ".blob.core.windows.net"
	}
	serviceURL += "/"
	var (
		client *azblob.Client
		err    error
		opts   azblob.ClientOptions
	)
	if noRetries {
		opts.Retry.MaxRetries = -1 // below zero: one try
	}
	switch {
	case o.ConnectionString != "":
		client, err = azblob.NewClientFromConnectionString(o.ConnectionString, &opts)
	case o.AccessKey != "":
		var cred *azblob.SharedKeyCredential
		if cred, err = azblob.NewSharedKeyCredential(o.Account, o.AccessKey); err == nil {
			client, err = azblob.NewClientWithSharedKeyCredential(serviceURL, cred, &opts)
		}
	case o.SASToken != "":
		client, err = azblob.NewClientWithNoCredential(serviceURL+"?"+strings.TrimPrefix(o.SASToken, "?"), &opts)
	case o.UseManagedIdentity:
		// As in the Azure default chain, AZURE_CLIENT_ID selects a
		// user-assigned identity; without it the system-assigned one.
		var mi azidentity.ManagedIdentityCredentialOptions
		if id := os.Getenv("AZURE_CLIENT_ID"); id != "" {
			mi.ID = azidentity.ClientID(id)
		}
		var cred *azidentity.ManagedIdentityCredential
		if cred, err = azidentity.NewManagedIdentityCredential(&mi); err == nil {
			client, err = azblob.NewClient(serviceURL, cred, &opts)
		}
	default:
		var cred *azidentity.DefaultAzureCredential
		if cred, err = azidentity.NewDefaultAzureCredential(nil); err == nil {
			client, err = azblob.NewClient(serviceURL, cred, &opts)
		}
	}
	if err != nil {
		// A malformed SAS or connection string comes back quoted in a
		// URL parse error: scrub the secrets from the message.
		return nil, fmt.Errorf("object-storage: azure client: %s", azureRedactor(o).Redact(err.Error()))
	}
	account := o.Account
	if account == "" {
		account = accountOf(o.ConnectionString)
	}
	return &azureStore{client: client, container: container, account: account, redact: azureRedactor(o)}, nil
}

// azureRedactor removes the configured secrets, and the key and SAS
// inside a connection string, from a message.
func azureRedactor(o *AzureOptions) *resilience.Redactor {
	secrets := []string{o.AccessKey, o.ConnectionString, o.SASToken, strings.TrimPrefix(o.SASToken, "?")}
	sasList := []string{strings.TrimPrefix(o.SASToken, "?")}
	for _, part := range strings.Split(o.ConnectionString, ";") {
		if k, v, ok := strings.Cut(part, "="); ok {
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "accountkey":
				secrets = append(secrets, strings.TrimSpace(v))
			case "sharedaccesssignature":
				secrets = append(secrets, strings.TrimSpace(v))
				sasList = append(sasList, strings.TrimSpace(v))
			}
		}
	}
	// The SDK re-encodes a SAS in its own parameter order, so the token
	// rarely appears verbatim in a URL it quotes (net/http errors quote
	// the whole request URL): the signature is what must go.
	for _, sas := range sasList {
		if q, err := url.ParseQuery(sas); err == nil {
			if sig := q.Get("sig"); sig != "" {
				secrets = append(secrets, sig, url.QueryEscape(sig), url.PathEscape(sig))
			}
		}
	}
	return resilience.NewRedactor(secrets...)
}

// accountOf reads AccountName from a connection string (for messages).
func accountOf(conn string) string {
	for _, part := range strings.Split(conn, ";") {
		if k, v, ok := strings.Cut(part, "="); ok && strings.EqualFold(strings.TrimSpace(k), "AccountName") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (s *azureStore) URL() string { return "azure://" + s.account + "/" + s.container }

func (s *azureStore) Put(ctx context.Context, key string, body []byte, contentType, contentEncoding string, lastOffset int64) error {
	h := &blob.HTTPHeaders{BlobContentType: &contentType}
	if contentEncoding != "" {
		h.BlobContentEncoding = &contentEncoding
	}
	var meta map[string]*string
	for k, v := range lastOffsetMeta(lastOffset) {
		meta = map[string]*string{k: &v}
	}
	_, err := s.client.UploadBuffer(ctx, s.container, key, body, &azblob.UploadBufferOptions{HTTPHeaders: h, Metadata: meta})
	return s.scrub(classifyAzure(err))
}

func (s *azureStore) LastOffset(ctx context.Context, key string) (int64, objectState, error) {
	props, err := s.client.ServiceClient().NewContainerClient(s.container).NewBlobClient(key).GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return 0, objectAbsent, nil
	}
	if err != nil {
		return 0, objectAbsent, s.scrub(classifyAzure(err))
	}
	meta := map[string]string{}
	for k, v := range props.Metadata {
		if v != nil {
			meta[k] = *v
		}
	}
	n, st := lastOffsetOf(meta)
	return n, st, nil
}

func (s *azureStore) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteBlob(ctx, s.container, key, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return nil
	}
	return s.scrub(classifyAzure(err))
}

// scrub keeps secrets out of an error: a request that could not even be
// built (a malformed SAS) is reported with its URL, query included. The
// class survives; the error chain only when nothing had to be removed.
func (s *azureStore) scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := s.redact.Redact(msg)
	if clean == msg {
		return err
	}
	return resilience.New(resilience.ClassOf(err), errors.New(clean))
}

func (s *azureStore) Close() error { return nil }

// classifyAzure classifies by HTTP status (the SDK has retried 5xx and
// throttling by then); a missing container is NotFound. A token the
// credential could not get is Auth.
func classifyAzure(err error) error {
	if err == nil {
		return nil
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		retryAfter := ""
		if re.RawResponse != nil {
			retryAfter = re.RawResponse.Header.Get("Retry-After")
		}
		return classifyHTTP(re.StatusCode, retryAfter, err)
	}
	var af *azidentity.AuthenticationFailedError
	if errors.As(err, &af) {
		return resilience.New(resilience.Auth, err)
	}
	return err
}
