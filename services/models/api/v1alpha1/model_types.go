package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Model is a model the public API serves under metadata.name (the "model"
// of a chat completion): its engine and, for an OpenAI-compatible engine,
// the upstreams behind it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=bulkhead,shortName=mdl
// +kubebuilder:printcolumn:name="Engine",type=string,JSONPath=`.spec.engine`
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Model struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ModelSpec   `json:"spec"`
	Status ModelStatus `json:"status,omitempty"`
}

// ModelList is a list of Model.
//
// +kubebuilder:object:root=true
type ModelList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Model `json:"items"`
}

// ModelSpec is what serves the model and on what terms.
type ModelSpec struct {
	// Engine serves the model: builtin (the trigram model shipped in the
	// repository, see builtin) or openai (OpenAI-compatible upstreams: vLLM,
	// llama.cpp's server, Ollama, DeepSeek, OpenAI; see backends).
	//
	// +kubebuilder:validation:Enum=builtin;openai
	Engine string `json:"engine"`
	// Builtin names the weights of the builtin engine (engine builtin).
	//
	// +optional
	Builtin *BuiltinEngine `json:"builtin,omitempty"`
	// Backends are the upstreams of engine openai: a weighted split within
	// the lowest priority that has a healthy backend with room, failover to
	// the next priority.
	//
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Backends []Backend `json:"backends,omitempty"`
	// PassiveHealth ejects a backend after consecutive failures
	// (default: 3 failures, 30s).
	//
	// +optional
	PassiveHealth *PassiveHealth `json:"passiveHealth,omitempty"`
	// Limits in tokens.
	Limits Limits `json:"limits"`
	// Prices per million tokens, in the billing currency, as decimal
	// strings ("0.14"); unset prices are free.
	//
	// +optional
	Prices Prices `json:"prices,omitempty"`
	// Thinking is the model's thinking mode, in DeepSeek's words: none (no
	// thinking mode; a request that enables it gets a 422), enabled (thinks
	// unless the request disables it) or disabled (answers directly unless
	// the request enables it).
	//
	// +optional
	// +kubebuilder:validation:Enum=none;enabled;disabled
	Thinking string `json:"thinking,omitempty"`
	// Fallbacks are the models tried, in order, when this one cannot serve.
	//
	// +optional
	// +kubebuilder:validation:MaxItems=8
	Fallbacks []string `json:"fallbacks,omitempty"`
	// DeprecatedFor marks the name deprecated in favour of another model.
	//
	// +optional
	DeprecatedFor string `json:"deprecatedFor,omitempty"`
	// OwnedBy is the "owned_by" of the OpenAI model object (default
	// bulkhead).
	//
	// +optional
	OwnedBy string `json:"ownedBy,omitempty"`
	// Visibility limits who may see and use the model (default: every
	// account).
	//
	// +optional
	Visibility *Visibility `json:"visibility,omitempty"`
}

// BuiltinEngine configures engine builtin.
type BuiltinEngine struct {
	// Weights names the trained weights ("trigram": the model trained at
	// start on the corpus in the repository; a fine-tuned model names its
	// own).
	Weights string `json:"weights"`
}

// Backend is one OpenAI-compatible upstream.
type Backend struct {
	// Name identifies the backend within the model (logs, metrics, errors).
	//
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`
	Name string `json:"name"`
	// BaseURL ends before /chat/completions, e.g.
	// http://127.0.0.1:11434/v1 (Ollama) or https://api.deepseek.com.
	BaseURL string `json:"baseURL"`
	// Model is the upstream's name of the model (default: the Model's
	// name).
	//
	// +optional
	Model string `json:"model,omitempty"`
	// APIKey is where in Vault the upstream's API key is (none: no key is
	// sent).
	//
	// +optional
	APIKey *VaultSecretRef `json:"apiKey,omitempty"`
	// Weight is the backend's share of the traffic among the backends of
	// its priority (default 1; 0 takes no traffic).
	//
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Weight *int32 `json:"weight,omitempty"`
	// Priority orders failover: 0 first, then 1, ... (default 0).
	//
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=9
	Priority int32 `json:"priority,omitempty"`
	// MaxConcurrency bounds the generations at once on this backend, per
	// inference replica (0: no bound); a full backend is skipped like an
	// ejected one.
	//
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxConcurrency int32 `json:"maxConcurrency,omitempty"`
	// Timeouts of a call to the backend.
	//
	// +optional
	Timeouts *BackendTimeouts `json:"timeouts,omitempty"`
}

// VaultSecretRef names a value in Vault's KV v2 store.
type VaultSecretRef struct {
	// VaultPath is the secret's path under the KV mount; inference may
	// read only bulkhead/upstreams/* (its Vault policy), e.g.
	// bulkhead/upstreams/deepseek. The secret's "hosts" (comma separated,
	// host or host:port) binds the key: it is sent to no other host.
	VaultPath string `json:"vaultPath"`
	// Key within the secret (default api_key).
	//
	// +optional
	Key string `json:"key,omitempty"`
}

// BackendTimeouts bound a call to a backend; durations like "5s".
type BackendTimeouts struct {
	// Connect: to open the connection (default 5s).
	//
	// +optional
	Connect Duration `json:"connect,omitempty"`
	// FirstToken: from the request to the reply's first byte (default 60s).
	//
	// +optional
	FirstToken Duration `json:"firstToken,omitempty"`
	// Idle: between two chunks of a stream (default 60s).
	//
	// +optional
	Idle Duration `json:"idle,omitempty"`
}

// PassiveHealth ejects a backend that keeps failing.
type PassiveHealth struct {
	// ConsecutiveFailures eject the backend (default 3).
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	ConsecutiveFailures int32 `json:"consecutiveFailures,omitempty"`
	// EjectionTime is how long it stays out (default 30s); then it is
	// tried again.
	//
	// +optional
	EjectionTime Duration `json:"ejectionTime,omitempty"`
}

// Limits are in tokens.
type Limits struct {
	// ContextLength is the window: prompt plus completion.
	//
	// +kubebuilder:validation:Minimum=1
	ContextLength int32 `json:"contextLength"`
	// MaxOutputTokens is the largest max_tokens a request may ask for
	// (default: contextLength).
	//
	// +optional
	MaxOutputTokens int32 `json:"maxOutputTokens,omitempty"`
	// DefaultMaxTokens is the max_tokens of a request that sets none
	// (default: maxOutputTokens).
	//
	// +optional
	DefaultMaxTokens int32 `json:"defaultMaxTokens,omitempty"`
}

// Prices per million tokens, decimal strings in the billing currency
// (at most six decimals).
type Prices struct {
	// CacheHit: prompt tokens served from the prompt cache.
	//
	// +optional
	CacheHit string `json:"cacheHit,omitempty"`
	// CacheMiss: other prompt tokens.
	//
	// +optional
	CacheMiss string `json:"cacheMiss,omitempty"`
	// Output: completion tokens, reasoning included.
	//
	// +optional
	Output string `json:"output,omitempty"`
}

// Visibility limits a model to some accounts.
type Visibility struct {
	// Accounts that may see and use the model.
	//
	// +kubebuilder:validation:MinItems=1
	Accounts []string `json:"accounts"`
}

// Duration is a duration string ("500ms", "10s", "1m30s").
//
// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$`
type Duration string

// ModelStatus is what the models service made of the object.
type ModelStatus struct {
	// Conditions: Accepted (valid and in force; when False, the message
	// names the field at fault and the version accepted before stays in
	// force) and Ready (a backend answered).
	//
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
