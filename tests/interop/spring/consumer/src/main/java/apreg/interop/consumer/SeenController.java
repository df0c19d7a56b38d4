package apreg.interop.consumer;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.springframework.cloud.client.ServiceInstance;
import org.springframework.cloud.client.discovery.DiscoveryClient;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RequestParam;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.client.RestClient;
import org.springframework.web.client.RestClientException;

/** Reports what DiscoveryClient lists and whom the load-balanced client reaches, for the runner to assert on. */
@RestController
public class SeenController {

    private final DiscoveryClient discovery;
    private final RestClient balanced;

    public SeenController(DiscoveryClient discovery, RestClient.Builder loadBalanced) {
        this.discovery = discovery;
        this.balanced = loadBalanced.build();
    }

    /** The instances DiscoveryClient.getInstances returns for a service id, in its order. */
    @GetMapping("/seen")
    public List<Map<String, Object>> seen(@RequestParam String service) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (ServiceInstance instance : discovery.getInstances(service)) {
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("instanceId", instance.getInstanceId());
            row.put("host", instance.getHost());
            row.put("port", instance.getPort());
            row.put("metadata", instance.getMetadata());
            out.add(row);
        }
        return out;
    }

    /** Calls http://{service}/whoami n times through the @LoadBalanced client; each entry is who answered, or the error. */
    @GetMapping("/call")
    public List<String> call(@RequestParam String service, @RequestParam(defaultValue = "6") int n) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            try {
                out.add(balanced.get().uri("http://" + service + "/whoami").retrieve().body(String.class));
            } catch (RestClientException e) {
                out.add("error: " + e.getMessage());
            }
        }
        return out;
    }
}
