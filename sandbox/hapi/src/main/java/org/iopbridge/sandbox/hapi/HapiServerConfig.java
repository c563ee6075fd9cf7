package org.iopbridge.sandbox.hapi;

import ca.uhn.fhir.batch2.jobs.config.Batch2JobsConfig;
import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.FhirVersionEnum;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.interceptor.api.IInterceptorService;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.config.ThreadPoolFactoryConfig;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.api.model.HistoryCountModeEnum;
import ca.uhn.fhir.jpa.batch2.JpaBatch2Config;
import ca.uhn.fhir.jpa.binary.api.IBinaryStorageSvc;
import ca.uhn.fhir.jpa.binstore.DatabaseBinaryContentStorageSvcImpl;
import ca.uhn.fhir.jpa.config.HapiJpaConfig;
import ca.uhn.fhir.jpa.config.r4.JpaR4Config;
import ca.uhn.fhir.jpa.config.util.HapiEntityManagerFactoryUtil;
import ca.uhn.fhir.jpa.model.config.PartitionSettings;
import ca.uhn.fhir.jpa.model.config.SubscriptionSettings;
import ca.uhn.fhir.jpa.provider.JpaCapabilityStatementProvider;
import ca.uhn.fhir.jpa.provider.JpaSystemProvider;
import ca.uhn.fhir.jpa.provider.SubscriptionTriggeringProvider;
import ca.uhn.fhir.jpa.provider.ValueSetOperationProvider;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.jpa.subscription.channel.config.SubscriptionChannelConfig;
import ca.uhn.fhir.jpa.subscription.match.config.SubscriptionProcessorConfig;
import ca.uhn.fhir.jpa.subscription.match.deliver.email.IEmailSender;
import ca.uhn.fhir.jpa.subscription.submit.config.SubscriptionSubmitterConfig;
import ca.uhn.fhir.jpa.subscription.util.SubscriptionDebugLogInterceptor;
import ca.uhn.fhir.rest.api.EncodingEnum;
import ca.uhn.fhir.rest.server.HardcodedServerAddressStrategy;
import ca.uhn.fhir.rest.server.IncomingRequestAddressStrategy;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.interceptor.CorsInterceptor;
import ca.uhn.fhir.rest.server.interceptor.LoggingInterceptor;
import ca.uhn.fhir.rest.server.interceptor.RequestValidatingInterceptor;
import ca.uhn.fhir.rest.server.interceptor.ResponseHighlighterInterceptor;
import ca.uhn.fhir.rest.server.provider.ResourceProviderFactory;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import ca.uhn.fhir.validation.IInstanceValidatorModule;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import jakarta.persistence.EntityManagerFactory;
import org.hl7.fhir.dstu2.model.Subscription.SubscriptionChannelType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.boot.context.properties.bind.Bindable;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Import;
import org.springframework.context.annotation.Lazy;
import org.springframework.context.annotation.Primary;
import org.springframework.core.env.Environment;
import org.springframework.orm.jpa.JpaTransactionManager;
import org.springframework.orm.jpa.LocalContainerEntityManagerFactoryBean;
import org.springframework.web.cors.CorsConfiguration;

import javax.sql.DataSource;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;

/**
 * Wires a HAPI FHIR JPA server for FHIR R4: storage settings, the Hibernate entity manager factory
 * on the Spring Boot DataSource, rest-hook subscriptions, batch2 jobs (expunge, delete-expunge) and
 * the RestfulServer with its providers and interceptors.
 */
@Configuration
@Import({
	JpaR4Config.class,
	HapiJpaConfig.class,
	JpaBatch2Config.class,
	Batch2JobsConfig.class,
	SubscriptionSubmitterConfig.class,
	SubscriptionProcessorConfig.class,
	SubscriptionChannelConfig.class,
	ThreadPoolFactoryConfig.class
})
public class HapiServerConfig {

	private static final Logger ourLog = LoggerFactory.getLogger(HapiServerConfig.class);

	@Bean
	public JpaStorageSettings storageSettings(SandboxProperties theProps) {
		if (!"R4".equalsIgnoreCase(theProps.getFhirVersion())) {
			throw new IllegalStateException("hapi.fhir.fhir_version=" + theProps.getFhirVersion()
					+ " is not supported by this sandbox; only R4 is wired");
		}
		JpaStorageSettings settings = new JpaStorageSettings();
		settings.setAllowExternalReferences(theProps.isAllowExternalReferences());
		settings.setAllowMultipleDelete(theProps.isAllowMultipleDelete());
		settings.setDeleteExpungeEnabled(theProps.isDeleteExpungeEnabled());
		settings.setExpungeEnabled(theProps.isExpungeEnabled());
		settings.setEnforceReferentialIntegrityOnDelete(theProps.isEnforceReferentialIntegrityOnDelete());
		settings.setEnforceReferentialIntegrityOnWrite(theProps.isEnforceReferentialIntegrityOnWrite());
		settings.setAutoCreatePlaceholderReferenceTargets(theProps.isAutoCreatePlaceholderReferenceTargets());
		settings.setResourceClientIdStrategy(theProps.getClientIdStrategy());
		// null = every search runs fresh (no 60 s result reuse), which keeps tests deterministic
		settings.setReuseCachedSearchResultsForMillis(theProps.getReuseCachedSearchResultsMillis());
		settings.setTreatBaseUrlsAsLocal(new HashSet<>(theProps.getLocalBaseUrls()));
		// exact _history totals instead of counts cached for a minute
		settings.setHistoryCountMode(HistoryCountModeEnum.COUNT_ACCURATE);
		settings.setAdvancedHSearchIndexing(false);
		settings.setHibernateSearchIndexSearchParams(false);
		ourLog.info("iop-hapi-sandbox storage: expunge={} multipleDelete={} deleteExpunge={} externalRefs={}"
						+ " clientIdStrategy={} reuseCachedSearchResultsMillis={}",
				theProps.isExpungeEnabled(), theProps.isAllowMultipleDelete(), theProps.isDeleteExpungeEnabled(),
				theProps.isAllowExternalReferences(), theProps.getClientIdStrategy(),
				theProps.getReuseCachedSearchResultsMillis());
		return settings;
	}

	@Bean
	public SubscriptionSettings subscriptionSettings(SandboxProperties theProps) {
		SubscriptionSettings settings = new SubscriptionSettings();
		if (theProps.getSubscription().isResthookEnabled()) {
			settings.addSupportedSubscriptionType(SubscriptionChannelType.RESTHOOK);
		}
		return settings;
	}

	@Bean
	public PartitionSettings partitionSettings() {
		return new PartitionSettings();
	}

	/**
	 * Hibernate settings: everything under spring.jpa.properties.* (so the dialect can be switched
	 * with SPRING_JPA_PROPERTIES_HIBERNATE_DIALECT), plus defaults for the ones not given.
	 */
	@Primary
	@Bean
	public LocalContainerEntityManagerFactoryBean entityManagerFactory(
			ConfigurableListableBeanFactory theBeanFactory,
			FhirContext theFhirContext,
			JpaStorageSettings theStorageSettings,
			DataSource theDataSource,
			Environment theEnvironment) {
		LocalContainerEntityManagerFactoryBean emf =
				HapiEntityManagerFactoryUtil.newEntityManagerFactory(theBeanFactory, theFhirContext, theStorageSettings);
		emf.setPersistenceUnitName("HAPI_PU");
		emf.setDataSource(theDataSource);

		Properties jpa = new Properties();
		jpa.put("hibernate.hbm2ddl.auto", "update");
		jpa.put("hibernate.format_sql", "false");
		jpa.put("hibernate.show_sql", "false");
		jpa.put("hibernate.jdbc.batch_size", "20");
		jpa.put("hibernate.cache.use_query_cache", "false");
		jpa.put("hibernate.cache.use_second_level_cache", "false");
		jpa.put("hibernate.cache.use_structured_entries", "false");
		jpa.put("hibernate.cache.use_minimal_puts", "false");
		jpa.put("hibernate.search.enabled", "false");
		Map<String, String> fromEnv = Binder.get(theEnvironment)
				.bind("spring.jpa.properties", Bindable.mapOf(String.class, String.class))
				.orElse(Map.of());
		jpa.putAll(fromEnv);
		ourLog.info("iop-hapi-sandbox hibernate: dialect={} hbm2ddl.auto={} search.enabled={}",
				jpa.get("hibernate.dialect"), jpa.get("hibernate.hbm2ddl.auto"), jpa.get("hibernate.search.enabled"));
		emf.setJpaProperties(jpa);
		return emf;
	}

	@Primary
	@Bean
	public JpaTransactionManager transactionManager(EntityManagerFactory theEntityManagerFactory) {
		JpaTransactionManager tx = new JpaTransactionManager();
		tx.setEntityManagerFactory(theEntityManagerFactory);
		return tx;
	}

	/** Binary content goes to the database (used only if Binary resources are stored). */
	@Lazy
	@Bean
	public IBinaryStorageSvc binaryStorageSvc() {
		return new DatabaseBinaryContentStorageSvcImpl();
	}

	/**
	 * The subscription processor needs an e-mail sender even when only rest-hook is enabled; this
	 * one only logs (e-mail subscriptions are not supported by the sandbox).
	 */
	@Bean
	public IEmailSender emailSender() {
		return theDetails -> ourLog.warn("E-mail subscription delivery is not supported in the sandbox; dropped: {}",
				theDetails.getSubject());
	}

	@Bean
	public CorsInterceptor corsInterceptor(SandboxProperties theProps) {
		CorsConfiguration cors = new CorsConfiguration();
		for (String header : List.of("Origin", "Accept", "Content-Type", "Authorization", "Cache-Control",
				"X-Requested-With", "Prefer", "If-Match", "If-None-Match", "If-None-Exist", "If-Modified-Since")) {
			cors.addAllowedHeader(header);
		}
		theProps.getCors().getAllowedOrigin().forEach(cors::addAllowedOriginPattern);
		cors.addExposedHeader("Location");
		cors.addExposedHeader("Content-Location");
		cors.addExposedHeader("ETag");
		cors.setAllowedMethods(List.of("GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "HEAD"));
		cors.setAllowCredentials(theProps.getCors().isAllowCredentials());
		return new CorsInterceptor(cors);
	}

	@Bean
	public RestfulServer restfulServer(
			SandboxProperties theProps,
			FhirContext theFhirContext,
			IFhirSystemDao<?, ?> theSystemDao,
			ResourceProviderFactory theResourceProviderFactory,
			JpaSystemProvider<?, ?> theSystemProvider,
			JpaStorageSettings theStorageSettings,
			ISearchParamRegistry theSearchParamRegistry,
			IValidationSupport theValidationSupport,
			DatabaseBackedPagingProvider thePagingProvider,
			CorsInterceptor theCorsInterceptor,
			IInterceptorService theJpaInterceptorService,
			ObjectProvider<ValueSetOperationProvider> theValueSetOperationProvider,
			ObjectProvider<SubscriptionTriggeringProvider> theSubscriptionTriggeringProvider,
			ObjectProvider<IInstanceValidatorModule> theInstanceValidator) {
		if (theFhirContext.getVersion().getVersion() != FhirVersionEnum.R4) {
			throw new IllegalStateException("Expected an R4 FhirContext, got " + theFhirContext.getVersion().getVersion());
		}
		RestfulServer server = new RestfulServer(theFhirContext);
		server.registerProviders(theResourceProviderFactory.createProviders());
		server.registerProvider(theSystemProvider);
		theValueSetOperationProvider.ifAvailable(server::registerProvider);
		theSubscriptionTriggeringProvider.ifAvailable(server::registerProvider);

		JpaCapabilityStatementProvider capabilities = new JpaCapabilityStatementProvider(
				server, theSystemDao, theStorageSettings, theSearchParamRegistry, theValidationSupport);
		capabilities.setImplementationDescription("iop-bridge HAPI FHIR R4 sandbox");
		server.setServerConformanceProvider(capabilities);

		thePagingProvider.setDefaultPageSize(theProps.getDefaultPageSize());
		thePagingProvider.setMaximumPageSize(theProps.getMaxPageSize());
		server.setPagingProvider(thePagingProvider);

		server.setDefaultResponseEncoding(EncodingEnum.JSON);
		server.setDefaultPrettyPrint(true);

		String address = theProps.getServerAddress();
		if (address != null && !address.isBlank()) {
			server.setServerAddressStrategy(new HardcodedServerAddressStrategy(address));
		} else {
			server.setServerAddressStrategy(new IncomingRequestAddressStrategy());
		}

		if (theProps.getCors().isEnabled()) {
			server.registerInterceptor(theCorsInterceptor);
		}
		server.registerInterceptor(new ResponseHighlighterInterceptor());
		// one access-log line per request (logger "iop.hapi.access")
		LoggingInterceptor accessLog = new LoggingInterceptor();
		accessLog.setLoggerName("iop.hapi.access");
		accessLog.setMessageFormat("${requestVerb} ${requestUrl} [${operationType} ${idOrResourceName}]"
				+ " ${processingTimeMillis}ms from ${remoteAddr} UA[${requestHeader.user-agent}]");
		accessLog.setErrorMessageFormat("ERROR ${requestVerb} ${requestUrl} ${processingTimeMillis}ms"
				+ " UA[${requestHeader.user-agent}]: ${exceptionMessage}");
		accessLog.setLogExceptions(true);
		server.registerInterceptor(accessLog);
		if (theProps.getValidation().isRequestsEnabled()) {
			RequestValidatingInterceptor requestValidator = new RequestValidatingInterceptor();
			requestValidator.setFailOnSeverity(ResultSeverityEnum.ERROR);
			requestValidator.setValidatorModules(List.of(theInstanceValidator.getObject()));
			server.registerInterceptor(requestValidator);
		}
		if (theProps.getSubscription().isResthookEnabled()) {
			// logs each subscription step (activation, matching, delivery) from the background threads
			theJpaInterceptorService.registerInterceptor(new SubscriptionDebugLogInterceptor());
		}
		return server;
	}
}
