package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// The mTLS of proxyless gRPC (gRFC A29): both ends take their workload
// certificate and the mesh's trust bundle from the certificate provider
// instance of their bootstrap (workload.CertificateProvider: grpc-go's
// file_watcher on the files the service keeps fresh from Vault), not from
// SDS. Envoy proxies get theirs over SDS (pending: see the zero-trust
// issue), so only the gRPC flavour carries TLS for now.

func providerInstance() *tlsv3.CertificateProviderPluginInstance {
	return &tlsv3.CertificateProviderPluginInstance{InstanceName: workload.CertificateProvider}
}

func commonTLS(sanPrefix string) *tlsv3.CommonTlsContext {
	vc := &tlsv3.CertificateValidationContext{CaCertificateProviderInstance: providerInstance()}
	if sanPrefix != "" {
		// grpc-go reads the (deprecated) untyped field; it matches the URI SAN
		// among the others.
		//lint:ignore SA1019 grpc-go v1.85 reads match_subject_alt_names only.
		vc.MatchSubjectAltNames = []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: sanPrefix}}}
	}
	return &tlsv3.CommonTlsContext{
		TlsCertificateProviderInstance: providerInstance(),
		ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc},
	}
}

// tlsSocket is the TLS transport socket with an Upstream- or
// DownstreamTlsContext.
func tlsSocket(ctx proto.Message) *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)},
	}
}

// upstreamTLS is a client's mTLS to a STRICT Service.
func upstreamTLS(t *ir.UpstreamTLS) *corev3.TransportSocket {
	return tlsSocket(&tlsv3.UpstreamTlsContext{CommonTlsContext: commonTLS(t.SANPrefix)})
}

// downstreamTLS is a STRICT server's mTLS: a client certificate that chains
// to the trust bundle is required (the caller's identity, for RBAC).
func downstreamTLS() *corev3.TransportSocket {
	return tlsSocket(&tlsv3.DownstreamTlsContext{CommonTlsContext: commonTLS(""), RequireClientCertificate: wrapperspb.Bool(true)})
}

// Envoy takes its workload certificate and the trust bundle over SDS, on
// the ADS stream, under ir.WorkloadSecret and ir.TrustBundleSecret; the
// control plane only serves them to nodes that proved their identity.
func sdsCommonTLS(sanPrefix string) *tlsv3.CommonTlsContext {
	c := &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: ir.WorkloadSecret, SdsConfig: adsSource()}},
	}
	var def *tlsv3.CertificateValidationContext
	if sanPrefix != "" {
		def = &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
			SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: sanPrefix}},
		}}}
	}
	c.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
		DefaultValidationContext:         def,
		ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: ir.TrustBundleSecret, SdsConfig: adsSource()},
	}}
	if def == nil {
		c.ValidationContextType.(*tlsv3.CommonTlsContext_CombinedValidationContext).CombinedValidationContext.DefaultValidationContext = &tlsv3.CertificateValidationContext{}
	}
	return c
}

// envoyUpstreamTLS is an Envoy proxy's mTLS to a STRICT Service.
func envoyUpstreamTLS(t *ir.UpstreamTLS) *corev3.TransportSocket {
	return tlsSocket(&tlsv3.UpstreamTlsContext{CommonTlsContext: sdsCommonTLS(t.SANPrefix)})
}

// envoyDownstreamTLS is a sidecar's inbound mTLS for a STRICT Service.
func envoyDownstreamTLS() *corev3.TransportSocket {
	return tlsSocket(&tlsv3.DownstreamTlsContext{CommonTlsContext: sdsCommonTLS(workload.TrustDomainPrefix), RequireClientCertificate: wrapperspb.Bool(true)})
}
