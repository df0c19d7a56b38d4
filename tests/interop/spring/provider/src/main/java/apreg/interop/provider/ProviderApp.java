package apreg.interop.provider;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.cloud.client.serviceregistry.Registration;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RestController;

/** A service the consumer finds through Eureka; it answers with its instance id so a caller knows who served it. */
@SpringBootApplication
@RestController
public class ProviderApp {

    private final Registration registration;

    public ProviderApp(Registration registration) {
        this.registration = registration;
    }

    @GetMapping("/whoami")
    public String whoami() {
        return registration.getInstanceId();
    }

    public static void main(String[] args) {
        SpringApplication.run(ProviderApp.class, args);
    }
}
