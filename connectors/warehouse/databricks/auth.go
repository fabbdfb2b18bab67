package databricks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// tokenRefreshBefore is how long before expiry a cached token is
// replaced, as Databricks' SDKs do.
const tokenRefreshBefore = 5 * time.Minute

// tokens mints OAuth 2.0 client-credentials tokens at the workspace's
// token endpoint (<workspace>/oidc/v1/token, the client id and secret in
// HTTP Basic auth) and caches one until shortly before it expires.
type tokens struct {
	cfg    clientcredentials.Config
	client *http.Client
	mu     sync.Mutex
	tok    *oauth2.Token
}

func newTokens(workspaceURL, clientID, secret string, params url.Values, client *http.Client) *tokens {
	return &tokens{client: client, cfg: clientcredentials.Config{
		ClientID: clientID, ClientSecret: secret,
		TokenURL:       workspaceURL + "/oidc/v1/token",
		Scopes:         []string{"all-apis"},
		EndpointParams: params,
		AuthStyle:      oauth2.AuthStyleInHeader,
	}}
}

// ingestTokens are the tokens Zerobus takes: scoped to its API of this
// workspace (resource) and, through authorization_details, to the table
// with the privileges ingestion needs, as Databricks documents for
// Zerobus.
func ingestTokens(workspaceURL, workspaceID, table, clientID, secret string, client *http.Client) (*tokens, error) {
	catalog, schema, _, err := splitTable(table)
	if err != nil {
		return nil, err
	}
	type detail struct {
		Type           string   `json:"type"`
		Privileges     []string `json:"privileges"`
		ObjectType     string   `json:"object_type"`
		ObjectFullPath string   `json:"object_full_path"`
		Operations     []string `json:"operations,omitempty"`
	}
	details, err := json.Marshal([]detail{
		{Type: "unity_catalog_privileges", Privileges: []string{"USE CATALOG"}, ObjectType: "CATALOG", ObjectFullPath: catalog},
		{Type: "unity_catalog_privileges", Privileges: []string{"USE SCHEMA"}, ObjectType: "SCHEMA", ObjectFullPath: catalog + "." + schema},
		{Type: "unity_catalog_privileges", Privileges: []string{"SELECT", "MODIFY"}, ObjectType: "TABLE", ObjectFullPath: table, Operations: []string{"zerobuswrite"}},
	})
	if err != nil {
		return nil, err
	}
	return newTokens(workspaceURL, clientID, secret, url.Values{
		"resource":              {zerobusAudience(workspaceID)},
		"authorization_details": {string(details)},
	}, client), nil
}

func zerobusAudience(workspaceID string) string {
	return "api://databricks/workspaces/" + workspaceID + "/zerobusDirectWriteApi"
}

// get returns a valid access token.
func (t *tokens) get(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != nil && (t.tok.Expiry.IsZero() || time.Until(t.tok.Expiry) > tokenRefreshBefore) {
		return t.tok.AccessToken, nil
	}
	tok, err := t.cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, t.client))
	if err != nil {
		return "", tokenError(err)
	}
	t.tok = tok
	return tok.AccessToken, nil
}

// drop forgets the cached token (the server refused it).
func (t *tokens) drop() {
	t.mu.Lock()
	t.tok = nil
	t.mu.Unlock()
}

// tokenError keeps the endpoint's status and OAuth error code, never
// the request (which would carry the secret in its Authorization header).
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		msg := re.ErrorCode
		if re.ErrorDescription != "" {
			msg += ": " + re.ErrorDescription
		}
		if msg == "" {
			msg = http.StatusText(re.Response.StatusCode)
		}
		return &zerobusError{class: classify(err), err: fmt.Errorf("token endpoint answered HTTP %d: %s", re.Response.StatusCode, msg)}
	}
	return classified(err)
}

// getJSON GETs a workspace API with a bearer token into out.
func getJSON(ctx context.Context, client *http.Client, u, token string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return classifiedAs(classFatal, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return classified(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return classified(err)
	}
	if resp.StatusCode != http.StatusOK {
		var apiErr struct {
			ErrorCode string `json:"error_code"`
			Message   string `json:"message"`
		}
		_ = json.Unmarshal(body, &apiErr)
		e := fmt.Errorf("HTTP %d %s: %s", resp.StatusCode, apiErr.ErrorCode, trunc(apiErr.Message))
		switch sc := resp.StatusCode; {
		case sc == http.StatusUnauthorized || sc == http.StatusForbidden:
			return classifiedAs(classAuth, e)
		case sc == http.StatusTooManyRequests:
			return classifiedAs(classRateLimited, e)
		case sc >= 500:
			return classifiedAs(classTransient, e)
		}
		return classifiedAs(classFatal, e)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return classifiedAs(classFatal, fmt.Errorf("decoding %s: %w", req.URL.Path, err))
	}
	return nil
}
