package org.iopbridge.sandbox.hapi;

import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import org.springframework.boot.context.properties.ConfigurationProperties;

import java.util.ArrayList;
import java.util.List;

/**
 * Settings under {@code hapi.fhir.*}. The YAML keys use the same snake_case names as the official
 * hapi-fhir-jpaserver-starter (e.g. {@code hapi.fhir.expunge_enabled}); Spring's relaxed binding maps
 * them onto these camelCase fields, and env vars such as {@code HAPI_FHIR_EXPUNGE_ENABLED} or
 * {@code hapi.fhir.expunge_enabled} override them.
 */
@ConfigurationProperties(prefix = "hapi.fhir")
public class SandboxProperties {

	/** Only R4 is wired in this sandbox. */
	private String fhirVersion = "R4";
	/** Fixed base URL for links; empty = derived from each incoming request. */
	private String serverAddress = "";
	private boolean allowExternalReferences = true;
	private boolean allowMultipleDelete = true;
	private boolean deleteExpungeEnabled = true;
	private boolean expungeEnabled = true;
	private boolean enforceReferentialIntegrityOnDelete = true;
	private boolean enforceReferentialIntegrityOnWrite = true;
	private boolean autoCreatePlaceholderReferenceTargets = false;
	private JpaStorageSettings.ClientIdStrategyEnum clientIdStrategy = JpaStorageSettings.ClientIdStrategyEnum.ALPHANUMERIC;
	/** null (empty value) = never reuse cached search results. */
	private Long reuseCachedSearchResultsMillis = null;
	private int defaultPageSize = 20;
	private int maxPageSize = 500;
	private List<String> localBaseUrls = new ArrayList<>();
	private final Subscription subscription = new Subscription();
	private final Cors cors = new Cors();
	private final Validation validation = new Validation();

	public static class Subscription {
		private boolean resthookEnabled = true;

		public boolean isResthookEnabled() { return resthookEnabled; }
		public void setResthookEnabled(boolean v) { resthookEnabled = v; }
	}

	public static class Cors {
		private boolean enabled = true;
		private boolean allowCredentials = true;
		private List<String> allowedOrigin = new ArrayList<>(List.of("*"));

		public boolean isEnabled() { return enabled; }
		public void setEnabled(boolean v) { enabled = v; }
		public boolean isAllowCredentials() { return allowCredentials; }
		public void setAllowCredentials(boolean v) { allowCredentials = v; }
		public List<String> getAllowedOrigin() { return allowedOrigin; }
		public void setAllowedOrigin(List<String> v) { allowedOrigin = v; }
	}

	public static class Validation {
		/** Validate every incoming request body (RequestValidatingInterceptor, fails on ERROR). */
		private boolean requestsEnabled = false;

		public boolean isRequestsEnabled() { return requestsEnabled; }
		public void setRequestsEnabled(boolean v) { requestsEnabled = v; }
	}

	public String getFhirVersion() { return fhirVersion; }
	public void setFhirVersion(String v) { fhirVersion = v; }
	public String getServerAddress() { return serverAddress; }
	public void setServerAddress(String v) { serverAddress = v; }
	public boolean isAllowExternalReferences() { return allowExternalReferences; }
	public void setAllowExternalReferences(boolean v) { allowExternalReferences = v; }
	public boolean isAllowMultipleDelete() { return allowMultipleDelete; }
	public void setAllowMultipleDelete(boolean v) { allowMultipleDelete = v; }
	public boolean isDeleteExpungeEnabled() { return deleteExpungeEnabled; }
	public void setDeleteExpungeEnabled(boolean v) { deleteExpungeEnabled = v; }
	public boolean isExpungeEnabled() { return expungeEnabled; }
	public void setExpungeEnabled(boolean v) { expungeEnabled = v; }
	public boolean isEnforceReferentialIntegrityOnDelete() { return enforceReferentialIntegrityOnDelete; }
	public void setEnforceReferentialIntegrityOnDelete(boolean v) { enforceReferentialIntegrityOnDelete = v; }
	public boolean isEnforceReferentialIntegrityOnWrite() { return enforceReferentialIntegrityOnWrite; }
	public void setEnforceReferentialIntegrityOnWrite(boolean v) { enforceReferentialIntegrityOnWrite = v; }
	public boolean isAutoCreatePlaceholderReferenceTargets() { return autoCreatePlaceholderReferenceTargets; }
	public void setAutoCreatePlaceholderReferenceTargets(boolean v) { autoCreatePlaceholderReferenceTargets = v; }
	public JpaStorageSettings.ClientIdStrategyEnum getClientIdStrategy() { return clientIdStrategy; }
	public void setClientIdStrategy(JpaStorageSettings.ClientIdStrategyEnum v) { clientIdStrategy = v; }
	public Long getReuseCachedSearchResultsMillis() { return reuseCachedSearchResultsMillis; }
	public void setReuseCachedSearchResultsMillis(Long v) { reuseCachedSearchResultsMillis = v; }
	public int getDefaultPageSize() { return defaultPageSize; }
	public void setDefaultPageSize(int v) { defaultPageSize = v; }
	public int getMaxPageSize() { return maxPageSize; }
	public void setMaxPageSize(int v) { maxPageSize = v; }
	public List<String> getLocalBaseUrls() { return localBaseUrls; }
	public void setLocalBaseUrls(List<String> v) { localBaseUrls = v; }
	public Subscription getSubscription() { return subscription; }
	public Cors getCors() { return cors; }
	public Validation getValidation() { return validation; }
}
