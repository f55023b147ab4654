package org.elasticsearch.plugins;

import org.elasticsearch.action.admin.cluster.node.info.PluginsAndModules;
import org.elasticsearch.common.settings.Settings;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Plugins loaded from the class path, as Elasticsearch's own test framework does: the
 * distribution's modules/ and plugins/ directories (and their descriptor files) are not
 * on Maven Central, the plugin classes are. Lives in this package for the package-private
 * LoadedPlugin and loadPlugin it needs.
 */
public final class ClasspathPluginsService extends PluginsService {
    private final List<LoadedPlugin> loaded;

    public ClasspathPluginsService(Settings settings, Path configDir, PluginsLoader loader,
                                   List<Class<? extends Plugin>> classes) {
        super(settings, configDir, loader);
        List<LoadedPlugin> plugins = new ArrayList<>();
        for (Class<? extends Plugin> cls : classes) {
            PluginDescriptor descriptor = new PluginDescriptor(
                cls.getName(), "loaded from the class path", "NA", org.elasticsearch.Build.current().version(),
                "17", cls.getName(), null, List.of(), false, false, false, false);
            plugins.add(new LoadedPlugin(descriptor, loadPlugin(cls, settings, configDir), cls.getClassLoader()));
        }
        this.loaded = List.copyOf(plugins);
    }

    @Override
    protected List<LoadedPlugin> plugins() {
        return loaded;
    }

    @Override
    public PluginsAndModules info() {
        return new PluginsAndModules(loaded.stream().map(LoadedPlugin::descriptor)
            .map(d -> new PluginRuntimeInfo(d)).toList(), List.of());
    }
}
