// The randomization grid: 48 indexed acquisition conditions (Extended Data Tab. 1).
process GRID {
    tag "grid"
    label 'process_single'
    container "${params.container_prefix}-parakeet-sim:${params.container_tag}"

    input:
    path grid_config            // optional YAML ([] when absent)

    output:
    path "grid/grid.json", emit: grid
    path "versions.yml",   emit: versions

    script:
    def args = task.ext.args ?: ''
    def config = grid_config ? "--config ${grid_config}" : ''
    """
    templearn-parakeet-sim grid --out grid/grid.json ${config} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        templearn: \$(python -c 'import templearn; print(templearn.__version__)')
    END_VERSIONS
    """

    stub:
    """
    mkdir -p grid && echo '{"conditions": []}' > grid/grid.json
    echo '"${task.process}": {templearn: stub}' > versions.yml
    """
}
