package org.iopbridge.sandbox.hapi;

import ca.uhn.fhir.rest.server.RestfulServer;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.autoconfigure.elasticsearch.ElasticsearchRestClientAutoConfiguration;
import org.springframework.boot.autoconfigure.orm.jpa.HibernateJpaAutoConfiguration;
import org.springframework.boot.autoconfigure.thymeleaf.ThymeleafAutoConfiguration;
import org.springframework.boot.context.properties.EnableConfigurationProperties;
import org.springframework.boot.web.servlet.ServletRegistrationBean;
import org.springframework.context.annotation.Bean;

/**
 * Entry point of the iop-bridge HAPI FHIR R4 sandbox server.
 *
 * <p>Spring Boot provides the embedded Tomcat and the DataSource (from {@code spring.datasource.*});
 * {@link HapiServerConfig} wires the HAPI JPA server itself. The JPA auto-configuration of Spring
 * Boot is switched off because HAPI needs its own entity manager factory; the Elasticsearch client
 * auto-configuration is switched off because it would try to reach localhost:9200.
 */
@SpringBootApplication(exclude = {
	HibernateJpaAutoConfiguration.class,
	// HAPI brings the Elasticsearch client and Thymeleaf onto the classpath; neither is used here
	ElasticsearchRestClientAutoConfiguration.class,
	ThymeleafAutoConfiguration.class
})
@EnableConfigurationProperties(SandboxProperties.class)
public class HapiSandboxApplication {

	public static void main(String[] args) {
		SpringApplication.run(HapiSandboxApplication.class, args);
	}

	/** Mounts the HAPI RestfulServer servlet at /fhir/*. */
	@Bean
	public ServletRegistrationBean<RestfulServer> fhirServletRegistration(RestfulServer theRestfulServer) {
		ServletRegistrationBean<RestfulServer> registration =
				new ServletRegistrationBean<>(theRestfulServer, "/fhir/*");
		registration.setName("fhirServlet");
		registration.setLoadOnStartup(1);
		return registration;
	}
}
