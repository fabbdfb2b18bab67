package llm

// Connection is the provider block both LLM transforms share, inlined into
// their configs (`yaml:",inline"`) so the keys, defaults and docs are one.
type Connection struct {
	Provider string `yaml:"provider" default:"openai" enum:"openai,bedrock" doc:"LLM provider: openai (also any OpenAI-compatible server through base_url) or bedrock."`
	APIKey   string `yaml:"api_key" secret:"true" doc:"API key (required for OpenAI unless base_url names a server without auth; Bedrock uses the AWS credential chain)."`
	BaseURL  string `yaml:"base_url" doc:"Base URL override: Azure OpenAI, Ollama (http://localhost:11434/v1), vLLM; for bedrock, a runtime endpoint override."`
	Region   string `yaml:"region" default:"us-east-1" doc:"AWS region (Bedrock only); the AWS default chain supplies credentials."`
}

// Retries is the retry block both LLM transforms share.
type Retries struct {
	MaxRetries     int `yaml:"max_retries" default:"3" min:"0" max:"20" doc:"Retries of a request that timed out, got a 5xx or a 429 (after its Retry-After)."`
	InitialBackoff int `yaml:"initial_backoff_ms" default:"500" min:"1" doc:"Wait before the first retry (ms), doubled for each next one."`
	MaxBackoff     int `yaml:"max_backoff_ms" default:"30000" min:"1" doc:"Longest wait between retries (ms); a Retry-After from the server wins."`
}

// Settings are the provider settings of a transform's config.
func (c Connection) Settings(timeoutSecs int, r Retries, concurrency int) Settings {
	return Settings{
		Provider: c.Provider, APIKey: c.APIKey, BaseURL: c.BaseURL, Region: c.Region,
		Timeout: Secs(timeoutSecs), MaxRetries: r.MaxRetries,
		InitialBackoff: Millis(r.InitialBackoff), MaxBackoff: Millis(r.MaxBackoff),
		Concurrency: concurrency,
	}
}
