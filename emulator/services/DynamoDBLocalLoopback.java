// DynamoDB Local on one address only (127.0.0.1 unless -Ddynamodb.local.host says otherwise).
//
// DynamoDBLocal.jar has no host option: its DynamoDBProxyServer builds Jetty's Server(port),
// whose connector binds every interface. This launcher builds the same server from the same
// command line (ServerRunner.createServerFromCommandLineArgs, what the jar's main does), sets
// the host of its connectors before Jetty opens them, and starts it. emulator/services/
// backends.py compiles it once against the installed jar (cached under node_modules/.cache).
import java.lang.reflect.Field;
import org.eclipse.jetty.server.AbstractNetworkConnector;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public final class DynamoDBLocalLoopback {
    public static void main(String[] args) throws Exception {
        String host = System.getProperty("dynamodb.local.host", "127.0.0.1");
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        int bound = 0;
        for (Connector connector : server.getConnectors()) {
            if (connector instanceof AbstractNetworkConnector network) {
                network.setHost(host);
                bound++;
            }
        }
        if (bound == 0) {
            throw new IllegalStateException("DynamoDB Local has no network connector to bind");
        }
        proxy.start();
        System.err.println("DynamoDB Local listens on " + host + " only");
    }
}
