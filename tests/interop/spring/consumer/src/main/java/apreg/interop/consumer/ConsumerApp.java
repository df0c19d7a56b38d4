package apreg.interop.consumer;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.cloud.client.loadbalancer.LoadBalanced;
import org.springframework.context.annotation.Bean;
import org.springframework.web.client.RestClient;

/** A client app that finds the provider through Eureka, as Spring Cloud users do. */
@SpringBootApplication
public class ConsumerApp {

    /** Resolves http://{service-id}/ through Spring Cloud LoadBalancer, fed by the Eureka client's cache. */
    @Bean
    @LoadBalanced
    RestClient.Builder loadBalanced() {
        return RestClient.builder();
    }

    public static void main(String[] args) {
        SpringApplication.run(ConsumerApp.class, args);
    }
}
